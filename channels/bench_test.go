package channels_test

import (
	"encoding/json"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

// benchSub is the cheapest possible subscriber: Send only counts and keeps the last frame,
// so benchmarks measure the hub, not the fake. Benchmarks drive it from one goroutine.
type benchSub struct {
	id   string
	v    protocol.Version // V1 when zero
	n    int
	last []byte
}

func (s *benchSub) SocketID() string { return s.id }
func (s *benchSub) Version() protocol.Version {
	if s.v == 0 {
		return protocol.V1
	}
	return s.v
}
func (s *benchSub) Send(frame []byte)        { s.n++; s.last = frame }
func (s *benchSub) SendEncoded(frame []byte) { s.n++; s.last = frame }
func (s *benchSub) Close(*protocol.Error)    {}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func newBenchSub(i int) *benchSub { return &benchSub{id: strconv.Itoa(i+1) + ".1"} }

func benchHub(b *testing.B, edit func(*config.App)) *channels.Hub {
	h, _ := newHub(b, edit)
	return h
}

func benchConnect(b *testing.B, h *channels.Hub, s *benchSub) *channels.Conn {
	c, err := h.Connect(appKey, s)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func benchFanout(b *testing.B, subscribers int) {
	h := benchHub(b, nil)
	subs := make([]*benchSub, subscribers)
	for i := range subs {
		subs[i] = newBenchSub(i)
		c := benchConnect(b, h, subs[i])
		if err := c.Subscribe(channels.SubscribeRequest{Channel: "prices"}); err != nil {
			b.Fatal(err)
		}
		subs[i].n = 0
	}
	ev := channels.Event{Name: "price.updated", Channels: []string{"prices"}, Data: `{"symbol":"ACME","bid":101.25,"ask":101.5,"ts":1767312245123}`}
	publishLoop(b, h, ev, subs)
}

// publishLoop publishes ev for the benchmark's iterations, reports ns per delivery (wall
// clock, and CPU time of the process, which a machine shared with other work disturbs
// less) and checks every subscriber got every frame.
func publishLoop(b *testing.B, h *channels.Hub, ev channels.Event, subs []*benchSub) {
	b.ReportAllocs()
	iters := 0
	cpu0 := cpuTime()
	for b.Loop() {
		if err := h.Publish(appID, ev); err != nil {
			b.Fatal(err)
		}
		iters++
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(iters)/float64(len(subs)), "ns/delivery")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(iters)/float64(len(subs)), "cpu-ns/delivery")
	for _, s := range subs {
		if s.n != iters {
			b.Fatalf("a subscriber got %d frames, want %d", s.n, iters)
		}
	}
}

// BenchmarkPublishFanout10k publishes one event to a channel with 10,000 in-process
// subscribers. The frame is encoded once, so allocs/op do not grow with subscribers.
func BenchmarkPublishFanout10k(b *testing.B) { benchFanout(b, 10_000) }

// BenchmarkPublishFanout100 is the same with 100 subscribers.
func BenchmarkPublishFanout100(b *testing.B) { benchFanout(b, 100) }

// BenchmarkSubscribeUnsubscribe joins and leaves a channel that has 100 other subscribers:
// public (no auth) and private (HMAC-SHA256 check on every subscribe).
func BenchmarkSubscribeUnsubscribe(b *testing.B) {
	for _, channel := range []string{"public-room", "private-room"} {
		b.Run(protocol.Classify(channel).Type.String(), func(b *testing.B) {
			h := benchHub(b, nil)
			for i := range 100 {
				s := newBenchSub(i + 1)
				c := benchConnect(b, h, s)
				if err := c.Subscribe(channels.SubscribeRequest{Channel: channel, Auth: channelAuth(s.id, channel, "")}); err != nil {
					b.Fatal(err)
				}
			}
			s := newBenchSub(0)
			c := benchConnect(b, h, s)
			req := channels.SubscribeRequest{Channel: channel, Auth: channelAuth(s.id, channel, "")}
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Subscribe(req); err != nil {
					b.Fatal(err)
				}
				c.Unsubscribe(channel)
			}
		})
	}
}

// BenchmarkClientEvent relays one client event from a member of a private channel to its 10
// other members.
func BenchmarkClientEvent(b *testing.B) {
	h := benchHub(b, func(a *config.App) { a.MaxClientEventsPerSecond = 1 << 30 })
	const channel = "private-chat"
	var sender *channels.Conn
	for i := range 11 {
		s := newBenchSub(i)
		c := benchConnect(b, h, s)
		if err := c.Subscribe(channels.SubscribeRequest{Channel: channel, Auth: channelAuth(s.id, channel, "")}); err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			sender = c
		}
	}
	f := protocol.Frame{Event: "client-typing", Channel: channel, Data: json.RawMessage(`{"user":"alice","typing":true}`)}
	b.ReportAllocs()
	for b.Loop() {
		if err := sender.ClientEvent(f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPresenceJoin subscribes a new user to a presence channel holding 100 members and
// unsubscribes it again: signature check, channel_data parsing, the member list in the ack,
// member_added and member_removed to the 100 others.
func BenchmarkPresenceJoin(b *testing.B) {
	h := benchHub(b, func(a *config.App) { a.MaxPresenceMembersPerChannel = 1000 })
	const channel = "presence-lobby"
	for i := range 100 {
		s := newBenchSub(i + 1)
		c := benchConnect(b, h, s)
		data := member("user-"+strconv.Itoa(i), `{"name":"User `+strconv.Itoa(i)+`"}`)
		if err := c.Subscribe(channels.SubscribeRequest{Channel: channel, Auth: channelAuth(s.id, channel, data), ChannelData: data}); err != nil {
			b.Fatal(err)
		}
	}
	s := newBenchSub(0)
	c := benchConnect(b, h, s)
	data := member("joiner", `{"name":"Joiner"}`)
	req := channels.SubscribeRequest{Channel: channel, Auth: channelAuth(s.id, channel, data), ChannelData: data}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Subscribe(req); err != nil {
			b.Fatal(err)
		}
		c.Unsubscribe(channel)
	}
}
