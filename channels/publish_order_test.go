package channels_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/delta"
	"github.com/pushwire/pushwire/delta/deltatest"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// orderStores are the history setups the concurrent-publisher tests run on: none (no
// serials), the memory store (synchronous appends) and Postgres (pipelined, group-committed
// appends).
func orderStores(t *testing.T) map[string]func(t *testing.T) channels.History {
	return map[string]func(t *testing.T) channels.History{
		"no history": func(t *testing.T) channels.History { return nil },
		"memory":     func(t *testing.T) channels.History { return history.NewMemory(history.MemoryOptions{}) },
		"postgres": func(t *testing.T) channels.History {
			p, err := history.NewPostgres(context.Background(), testkit.PostgresURL(t), history.PostgresOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Close)
			return p
		},
	}
}

// Many publishers at once on one channel with delta subscribers (fossil and xdelta3): every
// frame a subscriber receives is the next of its delta sequence and decodes against its
// predecessor, every message arrives exactly once, and on channels with history serials
// arrive in order without gaps.
func TestDeltaUnderConcurrentPublishers(t *testing.T) {
	for name, store := range orderStores(t) {
		t.Run(name, func(t *testing.T) {
			app := config.DefaultApp()
			app.ApplyDefaults()
			hist := store(t)
			h := channels.New([]config.App{app}, channels.Options{DeltaEncoder: delta.Encode, History: hist})
			// With history, a rewind skips the resume hold (hold.go).
			inits := map[*channelstest.Sub][]string{} // frames of the subscription (the announced algorithm)
			subscribe := func(alg string) *channelstest.Sub {
				c, s := connectV2(t, h, channels.ConnOptions{})
				req := subReq(s, "market-spot", "")
				if alg != "" {
					req.Delta, req.DeltaSet = alg, true
				}
				if hist != nil {
					req.Rewind = &channels.RewindSpec{Count: 1}
				}
				if err := c.Subscribe(req); err != nil {
					t.Fatal(err)
				}
				inits[s] = s.Take()
				return s
			}
			ps := subscribe("")
			var subs []*channelstest.Sub
			for _, alg := range []string{"fossil", "xdelta3"} {
				subs = append(subs, subscribe(alg))
			}
			const publishers, each = 8, 60
			var wg sync.WaitGroup
			for p := range publishers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						if err := h.Publish(appID, tick(p*1000+i, "BTC")); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			want := ps.Take()
			if len(want) != publishers*each {
				t.Fatalf("plain subscriber got %d frames, want %d", len(want), publishers*each)
			}
			checkSerials(t, hist != nil, want)
			for i, s := range subs {
				got, deltas := checkDeltaChain(t, inits[s], s.Take())
				if hist != nil {
					// One order per channel: the delta subscriber's is the plain one's.
					for j := range want {
						if !deltatest.RebuiltAs(t, got[j], deltas[j], want[j]) {
							t.Fatalf("subscriber %d message %d rebuilt as\n%s\nwant\n%s", i, j, got[j], deltatest.ExpectRebuilt(want[j], deltas[j]))
						}
					}
					continue
				}
				count := map[string]int{}
				plainOf := map[string]string{} // lean target -> plain frame
				for _, f := range want {
					count[f]++
					plainOf[deltatest.ExpectRebuilt(f, true)] = f
				}
				for j, f := range got {
					if deltas[j] {
						if p, ok := plainOf[f]; ok && deltatest.RebuiltAs(t, f, true, p) {
							f = p
						}
					}
					if count[f]--; count[f] < 0 {
						t.Fatalf("subscriber %d got a message twice or never published: %s", i, f)
					}
				}
			}
		})
	}
}

// checkDeltaChain rebuilds a delta subscriber's frames (after the frames of its
// subscription, init), checking each one is the next of
// its delta sequence and, when a delta, made against the frame just before it (what a
// client keeping one base per group can decode), and returns the rebuilt texts and which
// of them came from deltas.
func checkDeltaChain(t *testing.T, init, frames []string) ([]string, []bool) {
	t.Helper()
	r := newDeltaReader(t)
	for _, f := range init {
		_, _, _ = r.Rebuild([]byte(f)) // learns the announced algorithm
	}
	out := make([]string, len(frames))
	deltas := make([]bool, len(frames))
	for i, f := range frames {
		var v struct {
			Event string  `json:"event"`
			Seq   *uint64 `json:"__delta_seq"`
			Data  json.RawMessage
		}
		if err := json.Unmarshal([]byte(f), &v); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		seq := uint64(0)
		if v.Event == "sockudo:delta" {
			var d struct {
				Seq       uint64  `json:"seq"`
				BaseIndex *uint64 `json:"base_index"` // only with a conflation path
			}
			if err := json.Unmarshal(v.Data, &d); err != nil {
				t.Fatalf("delta frame %d: %v", i, err)
			}
			// Without base_index the client applies it to the frame it kept last.
			if i == 0 || d.BaseIndex != nil && *d.BaseIndex != uint64(i-1) {
				t.Fatalf("frame %d is a delta against base %v, not against its predecessor", i, d.BaseIndex)
			}
			seq = d.Seq
		} else if v.Seq != nil {
			seq = *v.Seq
		} else {
			t.Fatalf("frame %d has no delta sequence: %s", i, f)
		}
		if seq != uint64(i) {
			t.Fatalf("frame %d carries delta sequence %d: out of order", i, seq)
		}
		out[i], deltas[i] = r.Read(f), r.Last
	}
	if r.Deltas == 0 {
		t.Fatalf("no delta frame among %d", len(frames))
	}
	return out, deltas
}

// checkSerials checks V2 frames carry serials 1..n in order (with history) or none.
func checkSerials(t *testing.T, withHistory bool, frames []string) {
	t.Helper()
	for i, f := range frames {
		var v struct {
			Serial uint64 `json:"serial"`
		}
		if err := json.Unmarshal([]byte(f), &v); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		want := uint64(0)
		if withHistory {
			want = uint64(i + 1)
		}
		if v.Serial != want {
			t.Fatalf("frame %d has serial %d, want %d: %s", i, v.Serial, want, f)
		}
	}
}

// Several publishes to one channel started before any is waited for (a batch) finish in
// order on every store: the memory store's synchronous appends do not wait for the earlier
// ones to finish.
func TestStartPublishBatchOneChannel(t *testing.T) {
	for name, store := range orderStores(t) {
		t.Run(name, func(t *testing.T) {
			app := config.DefaultApp()
			app.ApplyDefaults()
			hist := store(t)
			h := channels.New([]config.App{app}, channels.Options{History: hist})
			var waits []func() []channels.PublishAck
			for i := range 20 {
				w, err := h.StartPublish(context.Background(), appID, channels.Event{Name: "e", Channels: []string{"batch-one"}, Data: fmt.Sprint(i)})
				if err != nil {
					t.Fatal(err)
				}
				waits = append(waits, w)
			}
			for i, w := range waits {
				acks := w()
				want := uint64(i + 1)
				if hist == nil {
					want = 0
				}
				if acks[0].Serial != want {
					t.Fatalf("publish %d: serial %d, want %d", i, acks[0].Serial, want)
				}
			}
		})
	}
}

// A publisher whose context is already done publishes nothing.
func TestStartPublishCancelled(t *testing.T) {
	h, _ := newHub(t, nil)
	c, s := connect(t, h)
	mustSubscribe(t, c, s, "gone", "")
	s.Take()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.PublishAcksCtx(ctx, appID, channels.Event{Name: "e", Channels: []string{"gone"}, Data: "x"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if err := h.Publish(appID, channels.Event{Name: "e", Channels: []string{"gone"}, Data: "after"}); err != nil {
		t.Fatal(err)
	}
	if got := s.Take(); len(got) != 1 || !strings.Contains(got[0], "after") {
		t.Fatalf("frames %v: the cancelled publish was delivered", got)
	}
}

// stallingHistory is a memory store whose appends to one channel wait until released.
type stallingHistory struct {
	*history.Memory
	channel string
	entered chan struct{}
	release chan struct{}
}

func (s *stallingHistory) Append(ctx context.Context, appID string, m *protocol.Message) error {
	if m.Channel == s.channel {
		s.entered <- struct{}{}
		<-s.release
	}
	return s.Memory.Append(ctx, appID, m)
}

// A history append that does not come back holds up its own channel only: publishes to 200
// other channels with history (on main some of them shared its publish-lock stripe) are
// stored and delivered meanwhile, and so is a V2 subscription to another channel; the
// stalled channel's next publish waits behind the first and both are delivered in order
// once the store answers.
func TestStalledAppendHoldsOnlyItsChannel(t *testing.T) {
	app := config.DefaultApp()
	app.EnableVersionedMessages = nil // plain appends through History.Append
	app.ApplyDefaults()
	st := &stallingHistory{Memory: history.NewMemory(history.MemoryOptions{}), channel: "slow",
		entered: make(chan struct{}, 1), release: make(chan struct{})}
	h := channels.New([]config.App{app}, channels.Options{History: st})
	c, s := connect(t, h)
	mustSubscribe(t, c, s, "slow", "")
	s.Take()
	first := make(chan []channels.PublishAck, 2)
	go func() {
		acks, _ := h.PublishAcks(appID, channels.Event{Name: "e", Channels: []string{"slow"}, Data: "1"})
		first <- acks
	}()
	<-st.entered
	second := make(chan []channels.PublishAck, 1)
	go func() {
		acks, _ := h.PublishAcks(appID, channels.Event{Name: "e", Channels: []string{"slow"}, Data: "2"})
		second <- acks
	}()
	for i := range 200 {
		ch := fmt.Sprintf("fast-%d", i)
		acks, err := h.PublishAcks(appID, channels.Event{Name: "e", Channels: []string{ch}, Data: "x"})
		if err != nil || acks[0].Serial != 1 {
			t.Fatalf("publish to %s while slow is stalled: %+v, %v", ch, acks, err)
		}
	}
	v2, vs := connectV2(t, h, channels.ConnOptions{})
	req := subReq(vs, "fast-0", "")
	req.Rewind = &channels.RewindSpec{Count: 1}
	if err := v2.Subscribe(req); err != nil {
		t.Fatalf("subscribe to another channel while slow is stalled: %v", err)
	}
	if got := s.Take(); len(got) != 0 {
		t.Fatalf("the stalled channel delivered %v before its store answered", got)
	}
	close(st.release)
	a1, a2 := <-first, <-second
	if a1[0].Serial != 1 || a2[0].Serial != 2 {
		t.Fatalf("serials %d and %d, want 1 and 2", a1[0].Serial, a2[0].Serial)
	}
	got := s.Take()
	if len(got) != 2 || !strings.Contains(got[0], `"data":"1"`) || !strings.Contains(got[1], `"data":"2"`) {
		t.Fatalf("slow delivered %v, want 1 then 2", got)
	}
}
