package wsframe

import (
	"errors"
	"net/http/httptest"
	"testing"
)

func TestCheckUpgrade(t *testing.T) {
	for _, tc := range []struct {
		name    string
		hdr     map[string]string
		wantErr error
	}{
		{"ok", map[string]string{"Connection": "keep-alive, Upgrade", "Upgrade": "WebSocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, nil},
		{"no upgrade", map[string]string{"Connection": "keep-alive", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, ErrNotUpgrade},
		{"version 8", map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, ErrBadVersion},
		{"bad key", map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "abc"}, ErrBadKey},
	} {
		r := httptest.NewRequest("GET", "/app/key", nil)
		for k, v := range tc.hdr {
			r.Header.Set(k, v)
		}
		if _, err := CheckUpgrade(r); !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.wantErr)
		}
	}
}

func TestAppendResponseGolden(t *testing.T) {
	want := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
	if got := string(AppendResponse(nil, "dGhlIHNhbXBsZSBub25jZQ==")); got != want {
		t.Fatalf("got %q", got)
	}
}
