package wsframe

import (
	"errors"
	"net/http"
	"strings"
)

// ErrNotUpgrade and friends are returned by CheckUpgrade; the server answers
// them with 400 (426 with Sec-WebSocket-Version: 13 for ErrBadVersion).
var (
	ErrNotUpgrade = errors.New("wsframe: not a WebSocket upgrade request")
	ErrBadVersion = errors.New("wsframe: unsupported Sec-WebSocket-Version")
	ErrBadKey     = errors.New("wsframe: invalid Sec-WebSocket-Key")
)

// CheckUpgrade validates an RFC 6455 opening handshake request and returns
// the client's Sec-WebSocket-Key.
func CheckUpgrade(r *http.Request) (key string, err error) {
	if r.Method != http.MethodGet || !headerHasToken(r.Header, "Connection", "upgrade") ||
		!headerHasToken(r.Header, "Upgrade", "websocket") {
		return "", ErrNotUpgrade
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		return "", ErrBadVersion
	}
	key = strings.TrimSpace(r.Header.Get("Sec-WebSocket-Key"))
	if !ValidKey(key) {
		return "", ErrBadKey
	}
	return key, nil
}

// AppendResponse appends the 101 Switching Protocols response for key to dst.
func AppendResponse(dst []byte, key string) []byte {
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	dst = append(dst, AcceptKey(key)...)
	return append(dst, "\r\n\r\n"...)
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
