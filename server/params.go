package server

import (
	"net/url"
	"strings"
	"time"

	"github.com/pushwire/pushwire/protocol"
)

// connParams are the query parameters of /app/{key} beyond protocol.
type connParams struct {
	// echo (V2) sends a connection its own client events back; echo_messages=false clears it.
	echo bool
	// appendFull (V2) is append_mode=full: message.append frames carry the whole string.
	appendFull bool
	// token is the capability token (V2), "" when none.
	token string
	// wire (V2) is the wire format (format=) and the client (client=flutter picks
	// sockudo_flutter's protobuf layout); V1 is always JSON.
	wire protocol.Wire
	// rollup (V2) is append_rollup_window: appends to one mutable message within it reach the
	// connection as one frame (0 = every append at once).
	rollup time.Duration
}

// maxTokenParam bounds the token query parameter before it is parsed (the parser refuses
// anything over 8 KiB with a precise error; this only stops absurd URLs early).
const maxTokenParam = 64 << 10

// parseConnParams reads the connection's query parameters. A non-empty second result is the
// reason for an HTTP 400 before the upgrade: an unsupported format, append_mode or
// append_rollup_window on a V2 URL (V1 ignores them, as Sockudo does). client matters only
// to a binary format (client=flutter: sockudo_flutter); version and flash are ignored.
func parseConnParams(v protocol.Version, q url.Values) (connParams, string) {
	p := connParams{echo: true, token: q.Get("token")}
	if len(p.token) > maxTokenParam {
		return p, "token is too large"
	}
	if v != protocol.V2 {
		return p, ""
	}
	f, ok := protocol.ParseFormat(q.Get("format"))
	if !ok {
		return p, "unknown format " + quote(q.Get("format")) + ": use json, messagepack (msgpack) or protobuf (proto)"
	}
	p.wire = protocol.Wire{Format: f, Client: protocol.ParseClient(q.Get("client"))}
	switch m := q.Get("append_mode"); m {
	case "", "delta":
	case "full":
		p.appendFull = true
	default:
		return p, "unknown append_mode " + quote(m) + ": use delta or full"
	}
	if w, ok := q["append_rollup_window"]; ok {
		d, err := protocol.ParseRollupWindow(w[0])
		if err != nil {
			return p, err.Error()
		}
		p.rollup = d
	}
	switch strings.ToLower(q.Get("echo_messages")) {
	case "false", "0":
		p.echo = false
	}
	return p, ""
}

func quote(s string) string { return `"` + protocol.Truncate(s, 32) + `"` }
