package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// TestBinaryWireFormats: on both transports, a format=messagepack / protobuf connection gets
// every frame as a binary message in its form (the handshake, a pong, a subscription ack, a
// publish, errors, and the closing error), decodes what the client sends in that form, reads
// a text message as JSON, and answers bad input with an error frame and carries on. A V1
// URL ignores format=; an unknown format is a 400.
func TestBinaryWireFormats(t *testing.T) {
	forTransports(t, func(t *testing.T) {
		for _, c := range []struct {
			query string
			form  protocol.Form
		}{
			{"format=messagepack&client=js", protocol.FormMsgpack},
			{"format=MSGPACK", protocol.FormMsgpack},
			{"format=protobuf", protocol.FormProtobuf},
			{"format=proto&client=flutter", protocol.FormProtobufFlutter},
		} {
			t.Run(c.query, func(t *testing.T) {
				_, hub, url := newTestServer(t, Options{})
				cl := dial(t, url+"/app/app-key?protocol=2&version=1&"+c.query)
				next := func() protocol.Frame {
					t.Helper()
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					typ, b, err := cl.ws.Read(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if typ != websocket.MessageBinary {
						t.Fatalf("text message %s on a binary connection", b)
					}
					f, perr := protocol.DecodeBinary(c.form, b)
					if perr != nil {
						t.Fatalf("%v: %x", perr, b)
					}
					return f
				}
				sendBin := func(frame string) {
					t.Helper()
					b, err := protocol.Encode(c.form, []byte(frame))
					if err != nil {
						t.Fatal(err)
					}
					if err := cl.ws.Write(context.Background(), websocket.MessageBinary, b); err != nil {
						t.Fatal(err)
					}
				}
				if f := next(); f.Event != "sockudo:connection_established" || !strings.Contains(string(f.Data), "socket_id") {
					t.Fatalf("handshake %+v", f)
				}
				sendBin(`{"event":"sockudo:ping","data":{}}`)
				if f := next(); f.Event != "sockudo:pong" {
					t.Fatalf("pong %+v", f)
				}
				sendBin(`{"event":"sockudo:subscribe","data":{"channel":"orders","auth":""}}`)
				if f := next(); f.Event != "sockudo_internal:subscription_succeeded" || f.Channel != "orders" {
					t.Fatalf("ack %+v", f)
				}
				if err := hub.Publish("app-id", channels.Event{Name: "order.created", Channels: []string{"orders"}, Data: `{"id":1}`}); err != nil {
					t.Fatal(err)
				}
				if f := next(); f.Event != "order.created" || string(f.Data) != `"{\"id\":1}"` {
					t.Fatalf("event %+v %s", f, f.Data)
				}
				if err := cl.ws.Write(context.Background(), websocket.MessageBinary, []byte{0xc1, 0xc1}); err != nil {
					t.Fatal(err)
				}
				if f := next(); f.Event != "sockudo:error" || !strings.Contains(string(f.Data), `"code":4000`) {
					t.Fatalf("error %+v %s", f, f.Data)
				}
				cl.send(`{"event":"sockudo:ping","data":{}}`) // text: JSON, answered in binary
				if f := next(); f.Event != "sockudo:pong" {
					t.Fatalf("pong to text %+v", f)
				}
			})
		}
	})
}

func TestFormatParameter(t *testing.T) {
	_, _, url := newTestServer(t, Options{})
	// V1 ignores format (always JSON text), as Sockudo does.
	c := dial(t, url+"/app/app-key?protocol=7&format=protobuf")
	c.handshake()
	resp, err := http.Get(strings.Replace(url, "ws", "http", 1) + "/app/app-key?protocol=2&format=avro")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("format=avro: HTTP %d, want 400", resp.StatusCode)
	}
}
