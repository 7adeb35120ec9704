package console_test

import (
	"strconv"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/console"
	"github.com/pushwire/pushwire/protocol"
)

// benchSub only counts frames, so the benchmark measures the hub.
type benchSub struct {
	id string
	n  int
}

func (s *benchSub) SocketID() string          { return s.id }
func (s *benchSub) Version() protocol.Version { return protocol.V1 }
func (s *benchSub) Send([]byte)               { s.n++ }
func (s *benchSub) SendEncoded([]byte)        { s.n++ }
func (s *benchSub) Close(*protocol.Error)     {}

// BenchmarkPublishConsole compares an HTTP-style publish fanned out to 100 subscribers with
// the console off (no tap) and on with nobody watching: the tap must cost nothing then.
//
//	go test -run '^$' -bench BenchmarkPublishConsole -benchmem -count 6 ./console/
func BenchmarkPublishConsole(b *testing.B) {
	for _, mode := range []string{"off", "on-no-viewer"} {
		b.Run("console="+mode, func(b *testing.B) {
			opts := channels.Options{}
			if mode != "off" {
				opts.Tap = console.New(apps(), console.Options{})
			}
			hub := channels.New(apps(), opts)
			for i := range 100 {
				c, err := hub.Connect("app-key", &benchSub{id: strconv.Itoa(i+1) + ".1"})
				if err != nil {
					b.Fatal(err)
				}
				if err := c.Subscribe(channels.SubscribeRequest{Channel: "prices"}); err != nil {
					b.Fatal(err)
				}
			}
			// Ephemeral: no history append, so the fan-out itself is what is measured.
			ev := channels.Event{Name: "price.updated", Channels: []string{"prices"}, Ephemeral: true,
				Data: `{"symbol":"ACME","bid":101.25,"ask":101.5,"ts":1767312245123}`}
			b.ReportAllocs()
			for b.Loop() {
				if err := hub.Publish("app-id", ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWatchingIdle is the whole cost the console adds to a publish (per channel) and to
// each subscription, client event and error while nobody watches: one Watching call.
func BenchmarkWatchingIdle(b *testing.B) {
	var tap channels.Tap = console.New(apps(), console.Options{})
	for b.Loop() {
		if tap.Watching("app-id") {
			b.Fatal("watching without a viewer")
		}
	}
}
