package channels_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/protocol"
)

// slowReads is a memory history store whose every Read takes at least delay: a store far
// away, or busy.
type slowReads struct {
	*history.Memory
	delay time.Duration
}

func (s slowReads) Read(ctx context.Context, appID, channel string, q protocol.HistoryQuery) (protocol.HistoryPage, error) {
	time.Sleep(s.delay)
	return s.Memory.Read(ctx, appID, channel, q)
}

// BenchmarkPublishDuringSlowResume publishes to a channel, one message at a time, while one
// connection resumes that very channel in a loop from 150 messages back (a cold read: past
// the hot buffer) against a store whose reads take 20 ms. It reports the publishes' p50 and
// p99 and maximum (acknowledged and delivered), how many took 10 ms or more (half a store
// read), and how many resumes ran. While a resume held the
// channel's turn for its read, each publish behind it waited for that read. "quiet" is the
// same without the resumes: what the machine gives the publisher meanwhile.
func BenchmarkPublishDuringSlowResume(b *testing.B) {
	b.Run("quiet", func(b *testing.B) { benchPublishDuringSlowResume(b, false) })
	b.Run("resuming", func(b *testing.B) { benchPublishDuringSlowResume(b, true) })
}

func benchPublishDuringSlowResume(b *testing.B, resume bool) {
	const ch, back, delay = "orders", 150, 20 * time.Millisecond
	app := config.DefaultApp()
	app.ApplyDefaults()
	h := channels.New([]config.App{app}, channels.Options{History: slowReads{history.NewMemory(history.MemoryOptions{}), delay}})
	other := benchConnect(b, h, newBenchSub(0))
	if err := other.Subscribe(channels.SubscribeRequest{Channel: ch}); err != nil {
		b.Fatal(err)
	}
	rs := &lockedSub{id: "2.1"}
	resumer, err := h.ConnectWith(appKey, rs, channels.ConnOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if err := resumer.Subscribe(channels.SubscribeRequest{Channel: ch}); err != nil {
		b.Fatal(err)
	}
	var head atomic.Uint64
	var stream string
	for range back + 10 {
		acks, err := h.PublishAcks(appID, channels.Event{Name: "e", Channels: []string{ch}, Data: "warm"})
		if err != nil {
			b.Fatal(err)
		}
		head.Store(acks[0].Serial)
		stream = acks[0].StreamID
	}
	stop := make(chan struct{})
	var resumes atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for resume {
			select {
			case <-stop:
				return
			default:
			}
			if err := resumer.Resume(resumeJSON(map[string]protocol.Position{ch: {StreamID: stream, Serial: head.Load() - back}})); err != nil {
				b.Error(err)
				return
			}
			resumes.Add(1)
		}
	})
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		acks, err := h.PublishAcks(appID, channels.Event{Name: "e", Channels: []string{ch}, Data: "x"})
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		head.Store(acks[0].Serial)
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
	slow, _ := slices.BinarySearch(lat, delay/2)

	b.ReportMetric(float64(len(lat)-slow), "publishes≥10ms")
	b.ReportMetric(float64(resumes.Load()), "resumes")
}

// lockedSub is benchSub for a connection written to from several goroutines.
type lockedSub struct {
	id string
	mu sync.Mutex
	n  int
}

func (s *lockedSub) SocketID() string          { return s.id }
func (s *lockedSub) Version() protocol.Version { return protocol.V2 }
func (s *lockedSub) Send(frame []byte)         { s.mu.Lock(); s.n++; s.mu.Unlock() }
func (s *lockedSub) SendEncoded(frame []byte)  { s.Send(frame) }
func (s *lockedSub) Close(*protocol.Error)     {}
