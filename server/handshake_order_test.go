package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

// TestHandshakeFrameComesFirst: a frame the hub queues for a connection before the server
// has sent connection_established (here a capability token that the hub's clock already
// sees as expired, so its expiry timer fires at once) never overtakes the handshake.
func TestHandshakeFrameComesFirst(t *testing.T) {
	forTransports(t, func(t *testing.T) {
		app := config.DefaultApp()
		app.ApplyDefaults()
		ahead := func() time.Time { return time.Now().Add(time.Hour) }
		hub := channels.New([]config.App{app}, channels.Options{Now: ahead, TokenRefreshGrace: time.Hour})
		srv := New(hub, Options{Transport: testTransport})
		mux := http.NewServeMux()
		mux.Handle("/app/", srv)
		ts := httptest.NewServer(mux)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
			ts.Close()
		})
		for i := 0; i < 20; i++ {
			tok, err := protocol.SignCapabilityToken(app.Key, app.Secret, protocol.TokenRequest{
				ClientID: "c", JTI: protocol.NewUUID(), Capability: map[string][]string{"*": {"subscribe"}},
				IssuedAt: time.Now(), TTL: time.Minute,
			})
			if err != nil {
				t.Fatal(err)
			}
			c := dial(t, "ws"+strings.TrimPrefix(ts.URL, "http")+"/app/"+app.Key+"?protocol=2&token="+tok)
			first, err := c.read()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(first, `{"event":"sockudo:connection_established"`) {
				t.Fatalf("first frame %s: want sockudo:connection_established", first)
			}
			second, err := c.read()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(second, `{"event":"sockudo:token_expired"`) {
				t.Fatalf("second frame %s: want sockudo:token_expired", second)
			}
			_ = c.ws.CloseNow()
		}
	})
}
