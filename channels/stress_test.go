package channels_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

// waitGoroutines waits until the goroutine count is back to at most n.
func waitGoroutines(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutine leak: %d running, baseline %d\n%s", runtime.NumGoroutine(), n, buf)
		}
		runtime.Gosched()
	}
}

// TestStressRegistry hammers one app from many goroutines: connections subscribing to and
// leaving overlapping public, private, presence, cache and user channels, signing in with
// watchlists, sending client events and disconnecting, while others publish, query and
// terminate users. Run it with -race. Afterwards every index must be empty.
func TestStressRegistry(t *testing.T) {
	run := time.Second
	if testing.Short() {
		run = 200 * time.Millisecond
	}
	baseline := runtime.NumGoroutine()
	h, _ := newHub(t, func(a *config.App) {
		a.MaxClientEventsPerSecond = 1 << 30 // the fake clock never moves
		a.MaxPresenceMembersPerChannel = 5   // fewer than the user ids: some joins are refused
		a.UserAuthenticationTimeout = config.Duration(time.Hour)
	})
	userIDs := []string{"u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"}
	chans := []string{"pub-0", "pub-1", "pub-2", "private-0", "private-1", "presence-0", "presence-1", "presence-cache-0", "cache-0", "private-encrypted-0"}
	for _, u := range userIDs[:3] {
		chans = append(chans, "#server-to-user-"+u)
	}
	deadline := time.Now().Add(run)

	var (
		wg       sync.WaitGroup
		ops      atomic.Int64
		subsMu   sync.Mutex
		allSubs  []*channelstest.Sub
		failures = make(chan string, 16)
	)
	fail := func(format string, args ...any) {
		select {
		case failures <- fmt.Sprintf(format, args...):
		default:
		}
	}

	// Connection goroutines: each owns its connections, as the server's reader does.
	for w := range 12 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for time.Now().Before(deadline) {
				s := &channelstest.Sub{ID: nextSocketID(), Limit: 64}
				if w%3 == 0 {
					s.V = protocol.V2
				}
				subsMu.Lock()
				allSubs = append(allSubs, s)
				subsMu.Unlock()
				c, err := h.Connect(appKey, s)
				if err != nil {
					fail("Connect: %v", err)
					return
				}
				me := userIDs[rng.IntN(len(userIDs))]
				for range 1 + rng.IntN(30) {
					ops.Add(1)
					ch := chans[rng.IntN(len(chans))]
					switch op := rng.IntN(10); {
					case op < 4:
						req := subReq(s, ch, member(me, `{"w":`+strconv.Itoa(w)+`}`))
						if err := c.Subscribe(req); err != nil && err.Code != protocol.CodeOverCapacity && err.Code != protocol.CodeUnauthorized {
							fail("Subscribe(%s): %v", ch, err)
						}
					case op < 6:
						c.Unsubscribe(ch)
					case op < 8:
						_ = c.ClientEvent(protocol.Frame{Event: "client-e", Channel: ch, Data: json.RawMessage(`{"n":1}`)})
					default:
						wl := `["` + userIDs[rng.IntN(len(userIDs))] + `","` + userIDs[rng.IntN(len(userIDs))] + `"]`
						if err := c.SignIn(signinData(s.ID, `{"id":"`+me+`","watchlist":`+wl+`}`)); err != nil {
							fail("SignIn: %v", err)
						}
					}
				}
				c.Disconnect()
			}
		})
	}
	// Publishers.
	for w := range 3 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			for time.Now().Before(deadline) {
				ops.Add(1)
				ev := channels.Event{Name: "ev", Channels: []string{chans[rng.IntN(len(chans))], chans[rng.IntN(len(chans))]}, Data: `{"x":1}`}
				if rng.IntN(4) == 0 {
					ev.ExceptSocketID = nextSocketID()
				}
				if err := h.Publish(appID, ev); err != nil {
					fail("Publish: %v", err)
				}
			}
		})
	}
	// Readers of the registry and the user-termination path.
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(9, 3))
		for time.Now().Before(deadline) {
			ops.Add(1)
			ch := chans[rng.IntN(len(chans))]
			if _, err := h.Channels(appID, "pres"); err != nil {
				fail("Channels: %v", err)
			}
			ci, _ := h.Channel(appID, ch)
			if ci.Occupied != (ci.SubscriptionCount > 0) || ci.UserCount > 5 {
				fail("inconsistent Channel(%s) = %+v", ch, ci)
			}
			ids, _ := h.Users(appID, ch)
			if len(ids) > 5 {
				fail("Users(%s) = %q over the member cap", ch, ids)
			}
			h.CachedEvent(appID, ch)
			h.Connections(appID)
			if rng.IntN(8) == 0 {
				h.TerminateUserConnections(appID, userIDs[rng.IntN(len(userIDs))])
			}
		}
	})
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	t.Logf("%d operations over %d connections in %v", ops.Load(), len(allSubs), run)

	if got := occupied(t, h); len(got) != 0 {
		t.Errorf("Channels after everyone left = %q", got)
	}
	if n := h.Connections(appID); n != 0 {
		t.Errorf("Connections = %d after everyone left", n)
	}
	if n := h.OccupiedChannels(appID); n != 0 {
		t.Errorf("OccupiedChannels = %d after everyone left", n)
	}
	if u, si, w, wl, ch := h.IndexSizes(appID); u+si+w+wl+ch != 0 {
		t.Errorf("indexes not empty: users %d, signedIn %d, watchers %d, watchlists %d, channels %d", u, si, w, wl, ch)
	}
	for _, ch := range chans {
		if ids := users(t, h, ch); len(ids) != 0 {
			t.Errorf("Users(%s) = %q", ch, ids)
		}
	}
	// Every frame handed out was whole, valid JSON.
	for _, s := range allSubs {
		for _, f := range s.RawFrames() {
			if !json.Valid(f) || !strings.HasPrefix(string(f), `{"event":`) {
				t.Fatalf("%s received a malformed frame %q", s, f)
			}
		}
	}
	waitGoroutines(t, baseline, waitTimeout)
}

// TestSlowSubscriberDoesNotBlockOthers: a subscriber whose queue is full closes itself with
// 4100 from inside the fan-out (as the server's does) and its Disconnect then runs on another
// goroutine while publishing goes on. The publisher never waits, the others receive every
// event in order, and the slow one is gone from the channel.
func TestSlowSubscriberDoesNotBlockOthers(t *testing.T) {
	const events = 10_000
	h, _ := newHub(t, nil)
	var fast []*channelstest.Sub
	for range 20 {
		c, s := connect(t, h)
		mustSubscribe(t, c, s, "firehose", "")
		s.Take()
		fast = append(fast, s)
	}
	disconnected := make(chan struct{})
	slow := &channelstest.Sub{ID: nextSocketID(), Limit: 16}
	slowConn, _ := connectSub(t, h, slow)
	slow.OnClose = func(*protocol.Error) {
		go func() {
			slowConn.Disconnect()
			close(disconnected)
		}()
	}
	mustSubscribe(t, slowConn, slow, "firehose", "")

	published := make(chan error, 1)
	go func() {
		for i := range events {
			if err := h.Publish(appID, channels.Event{Name: "e", Channels: []string{"firehose"}, Data: strconv.Itoa(i)}); err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()
	select {
	case err := <-published:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("publishing 10,000 events did not finish: the hub waited on something")
	}
	select {
	case <-disconnected:
	case <-time.After(waitTimeout):
		t.Fatal("the slow subscriber's Disconnect did not return")
	}

	for _, s := range fast {
		got := s.Frames()
		if len(got) != events {
			t.Fatalf("%s received %d events, want %d", s, len(got), events)
		}
		for i, f := range got {
			if want := `{"event":"e","channel":"firehose","data":"` + strconv.Itoa(i) + `"}`; f != want {
				t.Fatalf("%s frame %d = %s, want %s", s, i, f, want)
			}
		}
		if s.Closed() != nil {
			t.Fatalf("%s closed: %v", s, s.Closed())
		}
	}
	if slow.Len() != 16 {
		t.Errorf("slow subscriber holds %d frames, want its limit 16", slow.Len())
	}
	if err := slow.Closed(); err == nil || err.Code != protocol.CodeOverCapacity {
		t.Errorf("slow subscriber closed with %v, want 4100", err)
	}
	if ci, _ := h.Channel(appID, "firehose"); ci.SubscriptionCount != len(fast) {
		t.Errorf("SubscriptionCount = %d, want %d once the slow one left", ci.SubscriptionCount, len(fast))
	}
	t.Logf("slow subscriber: %d frames dropped between its 4100 and its Disconnect", slow.Dropped())
}
