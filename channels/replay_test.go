package channels_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/delta"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// readGate makes a store's next Read wait for the test.
type readGate struct {
	mu      sync.Mutex
	gate    chan struct{}
	entered chan struct{}
	skip    int // reads to let through before the gated one
}

// blockNextRead makes the next Read wait until release is called; entered is closed once
// that Read waits.
func (g *readGate) blockNextRead() (entered <-chan struct{}, release func()) {
	gate, in := make(chan struct{}), make(chan struct{})
	g.mu.Lock()
	g.gate, g.entered = gate, in
	g.mu.Unlock()
	return in, sync.OnceFunc(func() { close(gate) })
}

// blockRead is blockNextRead for the nth Read from now (1: the next).
func (g *readGate) blockRead(n int) (entered <-chan struct{}, release func()) {
	in, release := g.blockNextRead()
	g.mu.Lock()
	g.skip = n - 1
	g.mu.Unlock()
	return in, release
}

// wait is called at the start of every Read.
func (g *readGate) wait() {
	g.mu.Lock()
	if g.skip > 0 {
		g.skip--
		g.mu.Unlock()
		return
	}
	gate, in := g.gate, g.entered
	g.gate, g.entered = nil, nil
	g.mu.Unlock()
	if gate != nil {
		close(in)
		<-gate
	}
}

// gatedMemory is the memory history store behind a readGate.
type gatedMemory struct {
	*history.Memory
	*readGate
}

func (g gatedMemory) Read(ctx context.Context, appID, channel string, q protocol.HistoryQuery) (protocol.HistoryPage, error) {
	g.wait()
	return g.Memory.Read(ctx, appID, channel, q)
}

// gatedPostgres is the Postgres history store (pipelined, group-committed appends) behind
// a readGate.
type gatedPostgres struct {
	*history.Postgres
	*readGate
}

func (g gatedPostgres) Read(ctx context.Context, appID, channel string, q protocol.HistoryQuery) (protocol.HistoryPage, error) {
	g.wait()
	return g.Postgres.Read(ctx, appID, channel, q)
}

// replayStores are the history stores the replay tests run on.
var replayStores = []struct {
	name string
	open func(t testing.TB, clk *testkit.Clock) (channels.History, *readGate)
}{
	{"memory", func(t testing.TB, clk *testkit.Clock) (channels.History, *readGate) {
		g := &readGate{}
		return gatedMemory{history.NewMemory(history.MemoryOptions{Now: clk.Now, SweepEvery: -1}), g}, g
	}},
	{"postgres", func(t testing.TB, clk *testkit.Clock) (channels.History, *readGate) {
		if testing.Short() {
			t.Skip("Postgres: not in -short")
		}
		p, err := history.NewPostgres(context.Background(), testkit.PostgresURL(t), history.PostgresOptions{Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		g := &readGate{}
		return gatedPostgres{p, g}, g
	}},
}

// forReplayStores runs f once per store of replayStores, with a hub of the default app
// over it (the given replay queue limit, 0: default; fossil deltas; a clock the test moves).
func forReplayStores(t *testing.T, limit int, f func(t *testing.T, h *channels.Hub, g *readGate, clk *testkit.Clock)) {
	for _, st := range replayStores {
		t.Run(st.name, func(t *testing.T) {
			app := config.DefaultApp()
			app.ApplyDefaults()
			clk := testkit.NewClock(testEpoch)
			store, g := st.open(t, clk)
			h := channels.New([]config.App{app}, channels.Options{Now: clk.Now, History: store, ResumeWindow: 30 * time.Second,
				AfterFunc: hubTimers(clk), ReplayQueueLimit: limit, DeltaEncoder: delta.Encode})
			f(t, h, g, clk)
		})
	}
}

// replayCase starts one kind of replay to c from serial 2 of ch, on the calling goroutine:
// a sockudo:resume of a subscribed channel, a subscribe with a rewind of 3, or a subscribe
// completing a resume sent before it. prepare runs before the store is gated.
type replayCase struct {
	name    string
	prepare func(t *testing.T, c *channels.Conn, s *channelstest.Sub, stream string)
	start   func(c *channels.Conn, s *channelstest.Sub, stream string) *protocol.Error
	// before is what the connection has received when the read blocks; replay, what the
	// replay sends (its frames and those it owes) before the queued live frames.
	before, replay []string
	// first is the first serial the replay sends.
	first uint64
}

const rch = "orders"

func replayCases() []replayCase {
	pos := func(stream string) map[string]protocol.Position {
		return map[string]protocol.Position{rch: {StreamID: stream, Serial: 2}}
	}
	return []replayCase{
		{
			name: "resume",
			prepare: func(t *testing.T, c *channels.Conn, s *channelstest.Sub, _ string) {
				mustSubscribe(t, c, s, rch, "")
				s.Take()
			},
			start: func(c *channels.Conn, _ *channelstest.Sub, stream string) *protocol.Error {
				return c.Resume(resumeJSON(pos(stream)))
			},
			replay: []string{"e orders #3", "e orders #4", "e orders #5", "sockudo:resume_success "},
		},
		{
			name: "rewind",
			start: func(c *channels.Conn, s *channelstest.Sub, _ string) *protocol.Error {
				req := subReq(s, rch, "")
				req.Rewind = &channels.RewindSpec{Count: 3}
				return c.Subscribe(req)
			},
			before: []string{"sockudo_internal:subscription_succeeded orders #5"},
			replay: []string{"e orders #3", "e orders #4", "e orders #5", "sockudo:rewind_complete orders"},
		},
		{
			name: "rewind-seconds",
			start: func(c *channels.Conn, s *channelstest.Sub, _ string) *protocol.Error {
				req := subReq(s, rch, "")
				req.Rewind = &channels.RewindSpec{Seconds: 3600}
				return c.Subscribe(req)
			},
			before: []string{"sockudo_internal:subscription_succeeded orders #5"},
			replay: []string{"e orders #1", "e orders #2", "e orders #3", "e orders #4", "e orders #5", "sockudo:rewind_complete orders"},
			first:  1,
		},
		{
			name: "pending",
			prepare: func(t *testing.T, c *channels.Conn, s *channelstest.Sub, stream string) {
				mustResume(t, c, pos(stream))
			},
			start: func(c *channels.Conn, s *channelstest.Sub, _ string) *protocol.Error {
				return c.Subscribe(subReq(s, rch, ""))
			},
			replay: []string{"e orders #3", "e orders #4", "e orders #5", "sockudo_internal:subscription_succeeded orders #5", "sockudo:resume_success "},
		},
	}
}

// startBlocked publishes 5 messages on rch, lets them leave the hot replay buffer (the
// replay is read from the store), prepares c and starts the replay on its own goroutine,
// and returns once its store read waits. done receives the replay's error.
func startBlocked(t *testing.T, rc replayCase, h *channels.Hub, g *readGate, clk *testkit.Clock) (c *channels.Conn, s *channelstest.Sub, release func(), done <-chan *protocol.Error) {
	t.Helper()
	stream := streamOf(t, h, rch, 5)
	clk.Add(channels.HotReplayTTL + time.Second)
	c, s = connectV2(t, h, channels.ConnOptions{})
	t.Cleanup(c.Disconnect)
	if rc.prepare != nil {
		rc.prepare(t, c, s, stream)
	}
	entered, release := g.blockNextRead()
	t.Cleanup(release)
	errc := make(chan *protocol.Error, 1)
	go func() { errc <- rc.start(c, s, stream) }()
	select {
	case <-entered:
	case err := <-errc:
		t.Fatalf("the replay ended without reading the store: %v", err)
	}
	return c, s, release, errc
}

func waitDone(t *testing.T, done <-chan *protocol.Error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the replay did not end")
	}
}

// TestReplayReadDoesNotBlockPublish: while a resume, rewind or pending resume of a channel
// waits for its store read, publishes to that very channel are acknowledged and delivered to
// its other subscribers; the replaying connection then gets the replay, what it owes, and
// the live messages queued meanwhile — every serial once, in order — then live messages.
func TestReplayReadDoesNotBlockPublish(t *testing.T) {
	for _, rc := range replayCases() {
		t.Run(rc.name, func(t *testing.T) {
			forReplayStores(t, 0, func(t *testing.T, h *channels.Hub, g *readGate, clk *testkit.Clock) {
				// A protocol 1 subscriber: it has no resume hold, so it gets every message at once.
				other, os := connect(t, h)
				defer other.Disconnect()
				mustSubscribe(t, other, os, rch, "")
				_, s, release, done := startBlocked(t, rc, h, g, clk)
				os.Take()
				wantSeq(t, "the replaying connection while its read waits", takeFrames(t, s), rc.before...)

				acks := publishN(t, h, rch, 3) // returns once stored and delivered
				if len(acks) != 3 || acks[0].Serial != 6 || acks[2].Serial != 8 {
					t.Fatalf("acks %+v", acks)
				}
				wantSeq(t, "the other subscriber", takeFrames(t, os), "e orders", "e orders", "e orders")
				wantSeq(t, "the replaying connection before its read ends", takeFrames(t, s))

				release()
				waitDone(t, done)
				got := takeFrames(t, s)
				wantSeq(t, "the replaying connection", got, append(rc.replay, "e orders #6", "e orders #7", "e orders #8")...)
				for _, f := range got {
					if f.Event == "sockudo:resume_success" {
						if o := decodeOutcome(t, f); len(o.Recovered) != 1 || o.Recovered[0].Source != "cold" || o.Recovered[0].Position.Serial != 5 {
							t.Fatalf("resume_success %s", f.Data)
						}
					}
				}
				publishN(t, h, rch, 1)
				wantSeq(t, "live after the replay", takeFrames(t, s), "e orders #9")
			})
		})
	}
}

// TestReplayQueueOverflow: live messages overflowing the queue of a replay still reading
// fail that replay with the failure the clients know, and go out at once, in order; the
// replay that ends later sends nothing more of the channel.
func TestReplayQueueOverflow(t *testing.T) {
	for _, rc := range replayCases() {
		t.Run(rc.name, func(t *testing.T) {
			forReplayStores(t, 2, func(t *testing.T, h *channels.Hub, g *readGate, clk *testkit.Clock) {
				_, s, release, done := startBlocked(t, rc, h, g, clk)
				s.Take()
				publishN(t, h, rch, 2)
				wantSeq(t, "queued", takeFrames(t, s))
				publishN(t, h, rch, 1) // the third overflows the queue of 2
				got := takeFrames(t, s)
				live := []string{"e orders #6", "e orders #7", "e orders #8"}
				var failure rframe
				switch rc.name {
				case "rewind", "rewind-seconds":
					wantSeq(t, "at the overflow", got, append([]string{"sockudo:error "}, live...)...)
					failure = got[0]
				case "resume":
					wantSeq(t, "at the overflow", got, append([]string{"sockudo:resume_failed orders"}, live...)...)
					failure = got[0]
				case "pending":
					wantSeq(t, "at the overflow", got, append([]string{"sockudo_internal:subscription_succeeded orders #5",
						"sockudo:resume_failed orders", "sockudo:resume_success "}, live...)...)
					failure = got[1]
				}
				if strings.HasPrefix(rc.name, "rewind") {
					if !strings.Contains(failure.Data, "Rewind failed") {
						t.Fatalf("error frame %s", failure.Data)
					}
				} else if !strings.Contains(failure.Data, `"code":"persistence_unavailable","reason":"failed_to_deliver_recovery_payload"`) {
					t.Fatalf("resume_failed %s", failure.Data)
				}
				release()
				waitDone(t, done)
				got = takeFrames(t, s)
				if rc.name == "resume" {
					wantSeq(t, "after the read", got, "sockudo:resume_success ")
					if o := decodeOutcome(t, got[0]); len(o.Recovered) != 0 || len(o.Failed) != 1 || o.Failed[0].Reason != "failed_to_deliver_recovery_payload" {
						t.Fatalf("resume_success %s", got[0].Data)
					}
				} else {
					wantSeq(t, "after the read", got)
				}
				publishN(t, h, rch, 1)
				wantSeq(t, "live", takeFrames(t, s), "e orders #9")
			})
		})
	}
}

// TestReplayConcurrentPublishers: publishers to the channel run throughout a resume, a
// rewind and a pending resume whose store reads wait; each replaying connection receives
// every serial from its start to the last, once, in order (run with -race).
func TestReplayConcurrentPublishers(t *testing.T) {
	for _, rc := range replayCases() {
		t.Run(rc.name, func(t *testing.T) {
			forReplayStores(t, 0, func(t *testing.T, h *channels.Hub, g *readGate, clk *testkit.Clock) {
				_, s, release, done := startBlocked(t, rc, h, g, clk)
				const publishers, each = 4, 40
				var wg sync.WaitGroup
				halfway := make(chan struct{}, publishers)
				for p := range publishers {
					wg.Go(func() {
						for i := range each {
							if i == each/2 {
								halfway <- struct{}{}
							}
							if _, err := h.PublishAcks(appID, channels.Event{Name: "e", Channels: []string{rch}, Data: fmt.Sprint(p, "/", i)}); err != nil {
								t.Error(err)
								return
							}
						}
					})
				}
				for range publishers {
					<-halfway // the read ends while publishes still come
				}
				release()
				waitDone(t, done)
				wg.Wait()
				first := uint64(3)
				if rc.first != 0 {
					first = rc.first
				}
				var serials []uint64
				for _, f := range takeFrames(t, s) {
					if f.Event == "e" {
						serials = append(serials, f.Serial)
					}
				}
				last := uint64(5 + publishers*each)
				if uint64(len(serials)) != last-first+1 {
					t.Fatalf("%d messages, want %d: %v", len(serials), last-first+1, serials)
				}
				for i, sr := range serials {
					if sr != first+uint64(i) {
						t.Fatalf("message %d has serial %d, want %d: %v", i, sr, first+uint64(i), serials)
					}
				}
			})
		})
	}
}

// TestReplayDeltaAfterReplay: a delta subscriber's live frames queued during a replay go
// out full, and so does the first live frame after it; every frame rebuilds to the message.
func TestReplayDeltaAfterReplay(t *testing.T) {
	forReplayStores(t, 0, testReplayDeltaAfterReplay)
}

func testReplayDeltaAfterReplay(t *testing.T, h *channels.Hub, g *readGate, clk *testkit.Clock) {
	stream := streamOf(t, h, rch, 5)
	clk.Add(channels.HotReplayTTL + time.Second)
	c, s := connectV2(t, h, channels.ConnOptions{})
	defer c.Disconnect()
	req := subReq(s, rch, "")
	req.Delta, req.DeltaSet = "fossil", true
	if err := c.Subscribe(req); err != nil {
		t.Fatal(err)
	}
	pub := func(n int) {
		for i := range n {
			ev := tick(i, "BTC")
			ev.Channels = []string{rch}
			if err := h.Publish(appID, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.Take()
	// Let the subscription's resume hold end: a resume now replays only what it missed.
	other, os := connectV2(t, h, channels.ConnOptions{})
	defer other.Disconnect()
	mustSubscribe(t, other, os, rch, "")
	if err := c.Resume(resumeJSON(map[string]protocol.Position{rch: {StreamID: stream, Serial: 5}})); err != nil {
		t.Fatal(err)
	}
	s.Take()
	pub(3) // full, then deltas
	r := newDeltaReader(t)
	r.Announce("fossil")
	for _, f := range s.Take() {
		r.Read(f)
	}
	if r.Deltas != 2 {
		t.Fatalf("%d deltas before the replay, want 2", r.Deltas)
	}

	entered, release := g.blockNextRead()
	defer release()
	done := make(chan *protocol.Error, 1)
	go func() { done <- c.Resume(resumeJSON(map[string]protocol.Position{rch: {StreamID: stream, Serial: 2}})) }()
	<-entered
	pub(2) // queued
	release()
	waitDone(t, done)
	pub(2) // live: the first full, the next a delta
	got := s.Take()
	var kinds []string
	for _, f := range got {
		kind := "full"
		if strings.Contains(f, `"event":"sockudo:delta"`) {
			kind = "delta"
		} else if strings.Contains(f, `"event":"sockudo:resume_success"`) {
			kind = "success"
		} else if !strings.Contains(f, "__delta_seq") {
			kind = "replay"
		}
		kinds = append(kinds, kind)
		r.Read(f)
	}
	// The replay (serials 3..5, plain frames; 6..8 went out live), resume_success, the 2 queued (full), the
	// first live (full), then a delta.
	want := "replay replay replay success full full full delta"
	if strings.Join(kinds, " ") != want {
		t.Fatalf("frames %s\nwant %s\n%q", strings.Join(kinds, " "), want, got)
	}
}

// TestReplayResumeOverflowAfterReplay: a resume of two channels keeps the first one's live
// frames queued after its replay while the second is read; when they overflow the queue, the
// first channel gets resume_failed then its live frames at once, and the one resume_success
// reports it failed and the second recovered.
func TestReplayResumeOverflowAfterReplay(t *testing.T) {
	forReplayStores(t, 2, func(t *testing.T, h *channels.Hub, g *readGate, clk *testkit.Clock) {
		sa, sb := streamOf(t, h, "a", 5), streamOf(t, h, "b", 5)
		clk.Add(channels.HotReplayTTL + time.Second)
		c, s := connectV2(t, h, channels.ConnOptions{})
		defer c.Disconnect()
		mustSubscribe(t, c, s, "a", "")
		mustSubscribe(t, c, s, "b", "")
		s.Take()
		entered, release := g.blockRead(2) // a's read passes, b's waits
		defer release()
		done := make(chan *protocol.Error, 1)
		go func() {
			done <- c.Resume(resumeJSON(map[string]protocol.Position{"a": {StreamID: sa, Serial: 3}, "b": {StreamID: sb, Serial: 4}}))
		}()
		<-entered
		wantSeq(t, "a replayed, b reading", takeFrames(t, s), "e a #4", "e a #5")
		publishN(t, h, "a", 2)
		wantSeq(t, "queued", takeFrames(t, s))
		publishN(t, h, "a", 1)
		got := takeFrames(t, s)
		wantSeq(t, "at the overflow", got, "sockudo:resume_failed a", "e a #6", "e a #7", "e a #8")
		if !strings.Contains(got[0].Data, `"reason":"failed_to_deliver_recovery_payload"`) {
			t.Fatalf("resume_failed %s", got[0].Data)
		}
		release()
		waitDone(t, done)
		got = takeFrames(t, s)
		wantSeq(t, "after b's read", got, "e b #5", "sockudo:resume_success ")
		if o := decodeOutcome(t, got[1]); len(o.Recovered) != 1 || o.Recovered[0].Channel != "b" || len(o.Failed) != 1 || o.Failed[0].Channel != "a" {
			t.Fatalf("resume_success %s", got[1].Data)
		}
		publishN(t, h, "a", 1)
		publishN(t, h, "b", 1)
		wantSeq(t, "live", takeFrames(t, s), "e a #9", "e b #6")
	})
}
