package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// TestTLS serves wss:// and https:// from the same port with a self-signed certificate.
func TestTLS(t *testing.T) {
	srv := testkit.Start(t, testkit.Options{Port: -1, TLS: true})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CertPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, srv.WSURL("app-key"), &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	defer ws.CloseNow()
	if _, b, err := ws.Read(ctx); err != nil || !bytes.HasPrefix(b, []byte(`{"event":"pusher:connection_established"`)) {
		t.Fatalf("handshake over wss: %s %v", b, err)
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"event":"pusher:subscribe","data":{"channel":"secure"}}`)); err != nil {
		t.Fatal(err)
	}
	if _, b, err := ws.Read(ctx); err != nil || string(b) != `{"event":"pusher_internal:subscription_succeeded","channel":"secure","data":"{}"}` {
		t.Fatalf("ack over wss: %s %v", b, err)
	}
	body := []byte(`{"name":"e","channel":"secure","data":"over-https"}`)
	url := srv.HTTPURL() + "/apps/app-id/events?" + protocol.SignAPIRequest("app-key", "app-secret", "POST", "/apps/app-id/events", nil, body, time.Now())
	resp, err := hc.Post(url, "application/json", bytes.NewReader(body))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("https publish: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, b, err := ws.Read(ctx); err != nil || string(b) != `{"event":"e","channel":"secure","data":"over-https"}` {
		t.Fatalf("event over wss: %s %v", b, err)
	}
	// Plain HTTP on the TLS port is refused, not served.
	if r, err := http.Get("http://" + srv.Addr + "/up"); err == nil && r.StatusCode == 200 {
		t.Fatal("plain http served on the TLS port")
	}
}
