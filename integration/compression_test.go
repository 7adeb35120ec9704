package integration

import (
	"context"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/pushwire/pushwire/internal/testkit"
)

// TestPermessageDeflate: a client offering permessage-deflate gets it (without context
// takeover by default) and large frames arrive intact; with ws_compression disabled the
// extension is not negotiated.
func TestPermessageDeflate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "permessage-deflate"},
		{[]string{"--ws-compression", "disabled"}, ""},
	} {
		s := testkit.Start(t, testkit.Options{Port: -1, Args: tc.args})
		ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
		ws, resp, err := websocket.Dial(ctx, s.WSURL(testkit.AppKey), &websocket.DialOptions{CompressionMode: websocket.CompressionContextTakeover})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		ext := resp.Header.Get("Sec-WebSocket-Extensions")
		if (tc.want == "") != (ext == "") || !strings.Contains(ext, tc.want) {
			t.Fatalf("%v: Sec-WebSocket-Extensions %q, want %q", tc.args, ext, tc.want)
		}
		if tc.want != "" && !strings.Contains(ext, "server_no_context_takeover") {
			t.Fatalf("default should not take over context: %q", ext)
		}
		c := &client{ws: ws, msgs: make(chan message, 64), done: make(chan struct{}), key: testkit.AppKey, secret: testkit.AppSecret}
		go c.readLoop()
		c.expectHandshake(t, 120)
		c.subscribe(t, "deflate-prices")
		big := strings.Repeat(`{"symbol":"ACME","bid":101.25,"ask":101.5},`, 100)
		publish(t, s, map[string]any{"name": "tick", "channel": "deflate-prices", "data": big})
		c.expect(t, eventFrame("tick", "deflate-prices", big))
		_ = ws.CloseNow()
	}
}
