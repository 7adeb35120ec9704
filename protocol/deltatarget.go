package protocol

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
)

// DeltaTarget returns the lean text a sockudo:delta frame rebuilds for a V2 message whose
// client text (the frame itself in JSON, ClientText for binary formats; markers stripped) is
// text: {"event":…,"channel":…,"data":…} with the event and channel of text and its data as
// the clients' plain path surfaces it. ok false: no delta can make both clients surface what
// their plain path surfaces for this message, so it goes out as a full frame.
//
// Why the target need not be the whole frame: after applying a delta, both clients surface
// only the event of the delta frame and the "data" member of the rebuilt text
// (sockudo-js core/delta/manager.ts handleDeltaMessage `data: parsedMessage.data ||
// parsedMessage`; sockudo_flutter delta_compression.dart `parsed['data']` when the rebuilt
// text is an object holding "data"), and keep the rebuilt text as their next base; neither
// reads serial, message_id, stream_id or extras from it (recovery positions and dedup are
// read from the outer frame, before delta handling). So deltas between lean targets carry
// only the changes of the payload.
//
// The plain path of both clients JSON-decodes a string data (sockudo-js parseEventData,
// sockudo_flutter decodeEvent, falling back to the string), after rewriting serial fields
// whose integer JavaScript cannot hold into strings (preserveUnsafeJsonSerials); the delta
// path decodes nothing further. So a string data holding JSON goes into the target as that
// JSON, anything else as it is. ok is false when the surfaced value would differ: a value
// falsy in JavaScript (sockudo-js then surfaces the whole rebuilt object), an unsafe serial
// integer (rewritten on the plain path only), a string escaping a surrogate (which decoding
// here could change), or a text without data.
func DeltaTarget(text []byte) ([]byte, bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(text, &top) != nil {
		return nil, false
	}
	data, ok := top["data"]
	if !ok {
		return nil, false
	}
	value, ok := surfaced(data)
	if !ok {
		return nil, false
	}
	ev, ch := top["event"], top["channel"]
	out := make([]byte, 0, len(ev)+len(ch)+len(value)+32)
	out = append(out, '{')
	if ev != nil {
		out = append(out, `"event":`...)
		out = append(out, ev...)
		out = append(out, ',')
	}
	if ch != nil {
		out = append(out, `"channel":`...)
		out = append(out, ch...)
		out = append(out, ',')
	}
	out = append(out, `"data":`...)
	out = append(out, value...)
	return append(out, '}'), true
}

// surfaced is the JSON text of what the clients' plain path surfaces for data (see
// DeltaTarget), ok false when a delta cannot surface the same.
func surfaced(data json.RawMessage) ([]byte, bool) {
	if unsafeSerial(data) {
		return nil, false
	}
	value := []byte(data)
	if data[0] == '"' {
		if surrogateEscape.Match(data) {
			return nil, false
		}
		var s string
		if json.Unmarshal(data, &s) != nil {
			return nil, false
		}
		if inner := bytes.Trim([]byte(s), " \t\r\n"); json.Valid(inner) { // JSON's whitespace only
			if unsafeSerial(inner) {
				return nil, false
			}
			value = inner
		}
	}
	return value, !jsFalsy(value)
}

// surrogateEscape finds a \uD800–\uDFFF escape.
var surrogateEscape = regexp.MustCompile(`\\u[dD][89a-fA-F]`)

// serialField is the clients' pattern of a serial field with an integer value
// (sockudo-js protocol.ts JSON_SERIAL_FIELD_PATTERN, sockudo_flutter support.dart).
var serialField = regexp.MustCompile(`"[-_A-Za-z0-9]*serial[-_A-Za-z0-9]*"\s*:\s*-?(\d+)`)

// unsafeSerial reports whether the clients would rewrite a serial integer of b into a
// string: one beyond JavaScript's safe integers (2^53 - 1).
func unsafeSerial(b []byte) bool {
	if !bytes.Contains(b, []byte("serial")) {
		return false
	}
	for _, m := range serialField.FindAllSubmatch(b, -1) {
		n, err := strconv.ParseUint(string(m[1]), 10, 64)
		if err != nil || n > 1<<53-1 {
			return true
		}
	}
	return false
}

// jsFalsy reports whether JSON value v is falsy in JavaScript.
func jsFalsy(v []byte) bool {
	switch {
	case len(v) == 0:
		return true
	case string(v) == `""`, string(v) == "false", string(v) == "null":
		return true
	case v[0] == '-' || v[0] >= '0' && v[0] <= '9':
		f, _ := strconv.ParseFloat(string(v), 64) // 0 on underflow, as in JavaScript
		return f == 0
	}
	return false
}

// ClientData is the data both clients surface for a message text, decoded the way
// JavaScript's JSON.parse decodes it (numbers as float64): for a text a delta rebuilt
// (rebuilt true) its "data" member as it is, or the whole parsed text when that member is
// missing or falsy (sockudo-js `parsedMessage.data || parsedMessage`); for a full frame's text
// its "data" member, decoded once more when it is a string holding JSON (sockudo-js
// parseEventData, sockudo_flutter decodeEvent; their rewriting of unsafe serial integers is
// not modelled). Tests and the load tool compare the two to check a delta surfaces what the
// plain frame does.
func ClientData(text []byte, rebuilt bool) (any, error) {
	var whole map[string]any
	if err := json.Unmarshal(text, &whole); err != nil {
		return nil, err
	}
	d, ok := whole["data"]
	if rebuilt {
		switch x := d.(type) {
		case nil:
			ok = false
		case bool:
			ok = x
		case float64:
			ok = x != 0
		case string:
			ok = x != ""
		}
		if !ok {
			return whole, nil
		}
		return d, nil
	}
	if s, isString := d.(string); isString {
		var inner any
		if json.Unmarshal([]byte(s), &inner) == nil {
			return inner, nil
		}
	}
	return d, nil
}
