package channels_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

// recorder is an Observer that records every call as a line.
type recorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.lines
	r.lines = nil
	return out
}

func (r *recorder) ChannelOccupied(app, ch string)  { r.add("occupied %s %s", app, ch) }
func (r *recorder) ChannelVacated(app, ch string)   { r.add("vacated %s %s", app, ch) }
func (r *recorder) MemberAdded(app, ch, u string)   { r.add("member_added %s %s %s", app, ch, u) }
func (r *recorder) MemberRemoved(app, ch, u string) { r.add("member_removed %s %s %s", app, ch, u) }
func (r *recorder) CacheMiss(app, ch string)        { r.add("cache_miss %s %s", app, ch) }
func (r *recorder) SubscriptionCount(app, ch string, n int) {
	r.add("subscription_count %s %s %d", app, ch, n)
}
func (r *recorder) ClientEvent(app, ch, ev string, data json.RawMessage, sock, user string) {
	r.add("client_event %s %s %s %s user=%s", app, ch, ev, data, user)
}

func newObservedHub(t *testing.T, edit func(*config.App)) (*channels.Hub, *recorder) {
	t.Helper()
	app := config.DefaultApp()
	app.ApplyDefaults()
	if edit != nil {
		edit(&app)
	}
	rec := &recorder{}
	return channels.New([]config.App{app}, channels.Options{Observer: rec}), rec
}

func wantLines(t *testing.T, rec *recorder, want ...string) {
	t.Helper()
	if got := rec.take(); !slices.Equal(got, want) {
		t.Fatalf("observer got\n  %q\nwant\n  %q", got, want)
	}
}

func TestObserverLifecycle(t *testing.T) {
	h, rec := newObservedHub(t, nil)
	c1, s1 := connect(t, h)
	c2, s2 := connect(t, h)

	mustSubscribe(t, c1, s1, "news", "")
	wantLines(t, rec, "occupied app-id news", "subscription_count app-id news 1")
	mustSubscribe(t, c2, s2, "news", "")
	wantLines(t, rec, "subscription_count app-id news 2")
	c1.Unsubscribe("news")
	wantLines(t, rec, "subscription_count app-id news 1")
	c2.Unsubscribe("news")
	wantLines(t, rec, "subscription_count app-id news 0", "vacated app-id news")

	mustSubscribe(t, c1, s1, "presence-room", member("u1", ""))
	wantLines(t, rec, "occupied app-id presence-room", "member_added app-id presence-room u1")
	mustSubscribe(t, c2, s2, "presence-room", member("u1", ""))
	wantLines(t, rec) // same user, second socket: no member_added, no count for presence
	if err := c1.ClientEvent(protocol.Frame{Event: "client-typing", Channel: "presence-room", Data: json.RawMessage(`{"t":1}`)}); err != nil {
		t.Fatal(err)
	}
	wantLines(t, rec, `client_event app-id presence-room client-typing {"t":1} user=u1`)
	c1.Disconnect()
	wantLines(t, rec)
	c2.Disconnect()
	wantLines(t, rec, "member_removed app-id presence-room u1", "vacated app-id presence-room")

	c3, s3 := connect(t, h)
	mustSubscribe(t, c3, s3, "cache-prices", "")
	wantLines(t, rec, "occupied app-id cache-prices", "subscription_count app-id cache-prices 1", "cache_miss app-id cache-prices")
}

func TestSubscriptionCountEvents(t *testing.T) {
	h, _ := newHub(t, func(a *config.App) { a.SubscriptionCountEvents = true })
	c1, s1 := connect(t, h)
	c2, s2 := connect(t, h)
	count := func(n int) string {
		return fmt.Sprintf(`{"event":"pusher_internal:subscription_count","channel":"news","data":"{\"subscription_count\":%d}"}`, n)
	}
	mustSubscribe(t, c1, s1, "news", "")
	wantFrames(t, "first", s1, ack("news"), count(1))
	mustSubscribe(t, c2, s2, "news", "")
	wantFrames(t, "first", s1, count(2))
	wantFrames(t, "second", s2, ack("news"), count(2))
	c2.Disconnect()
	wantFrames(t, "first", s1, count(1))

	// Presence channels never get it (their member events carry the count).
	mustSubscribe(t, c1, s1, "presence-x", member("u", ""))
	if got := s1.Take(); len(got) != 1 {
		t.Fatalf("presence frames %q", got)
	}
}
