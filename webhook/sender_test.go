package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

// TestEventShapes checks the exact body of each event type: Pusher's field names, order
// and types, and a client event's data as a JSON string.
func TestEventShapes(t *testing.T) {
	tests := []struct {
		name string
		call func(s *Sender)
		want string
	}{
		{"channel_occupied", func(s *Sender) { s.ChannelOccupied(appID, "my-channel") },
			`{"name":"channel_occupied","channel":"my-channel"}`},
		{"channel_vacated", func(s *Sender) { s.ChannelVacated(appID, "my-channel") },
			`{"name":"channel_vacated","channel":"my-channel"}`},
		{"member_added", func(s *Sender) { s.MemberAdded(appID, "presence-room", "u1") },
			`{"name":"member_added","channel":"presence-room","user_id":"u1"}`},
		{"member_removed", func(s *Sender) { s.MemberRemoved(appID, "presence-room", "u1") },
			`{"name":"member_removed","channel":"presence-room","user_id":"u1"}`},
		{"client_event object data becomes its JSON text", func(s *Sender) {
			s.ClientEvent(appID, "private-chat", "client-typing", json.RawMessage(`{"a":1,"html":"<b>é</b>"}`), "123.456", "")
		}, `{"name":"client_event","channel":"private-chat","event":"client-typing","data":"{\"a\":1,\"html\":\"<b>é</b>\"}","socket_id":"123.456"}`},
		{"client_event string data stays that string", func(s *Sender) {
			s.ClientEvent(appID, "private-chat", "client-typing", json.RawMessage(`"hello \"you\""`), "123.456", "")
		}, `{"name":"client_event","channel":"private-chat","event":"client-typing","data":"hello \"you\"","socket_id":"123.456"}`},
		{"client_event number data", func(s *Sender) {
			s.ClientEvent(appID, "private-chat", "client-n", json.RawMessage(`42`), "123.456", "")
		}, `{"name":"client_event","channel":"private-chat","event":"client-n","data":"42","socket_id":"123.456"}`},
		{"client_event without data", func(s *Sender) {
			s.ClientEvent(appID, "private-chat", "client-n", nil, "123.456", "")
		}, `{"name":"client_event","channel":"private-chat","event":"client-n","data":"","socket_id":"123.456"}`},
		{"client_event on presence carries user_id", func(s *Sender) {
			s.ClientEvent(appID, "presence-room", "client-hi", json.RawMessage(`{"x":[1,2]}`), "1.2", "u7")
		}, `{"name":"client_event","channel":"presence-room","event":"client-hi","data":"{\"x\":[1,2]}","socket_id":"1.2","user_id":"u7"}`},
		{"cache_miss", func(s *Sender) { s.CacheMiss(appID, "cache-prices") },
			`{"name":"cache_miss","channel":"cache-prices"}`},
		{"subscription_count", func(s *Sender) { s.SubscriptionCount(appID, "my-channel", 3) },
			`{"name":"subscription_count","channel":"my-channel","subscription_count":3}`},
		{"subscription_count zero", func(s *Sender) { s.SubscriptionCount(appID, "my-channel", 0) },
			`{"name":"subscription_count","channel":"my-channel","subscription_count":0}`},
		{"message_version_created", func(s *Sender) {
			s.MessageVersionCreated(appID, "chat", "m1", "v2", protocol.ActionAppend)
		}, `{"name":"message_version_created","channel":"chat","message_serial":"m1","version_serial":"v2","action":"message.append"}`},
		{"annotation_created", func(s *Sender) {
			s.AnnotationCreated(appID, "chat", "m1", "00000000000000000001:a", "reaction:distinct.v1")
		}, `{"name":"annotation_created","channel":"chat","message_serial":"m1","annotation_serial":"00000000000000000001:a","annotation_type":"reaction:distinct.v1"}`},
		{"annotation_deleted", func(s *Sender) {
			s.AnnotationDeleted(appID, "chat", "m1", "00000000000000000002:a", "00000000000000000001:a", "reaction:distinct.v1")
		}, `{"name":"annotation_deleted","channel":"chat","message_serial":"m1","annotation_serial":"00000000000000000002:a","deleted_annotation_serial":"00000000000000000001:a","annotation_type":"reaction:distinct.v1"}`},
		{"push_delivery_failed", func(s *Sender) {
			s.PushDeliveryFailed(appID, "pub-1", "dev-1", "u1", "apns", "Unregistered", true)
		}, `{"name":"push_delivery_failed","publish_id":"pub-1","device_id":"dev-1","user_id":"u1","platform":"apns","reason":"Unregistered","token_removed":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			clk := newFakeClock()
			s := newSender(t, []config.App{testApp(hook(rc.url()))},
				Options{VacateDelay: -1, BatchInterval: -1, Now: clk.Now}, nil)
			tt.call(s)
			reqs := rc.waitRequests(t, 1)
			closeNow(t, s)
			if len(rc.requests()) != 1 {
				t.Fatalf("got %d requests, want 1", len(rc.requests()))
			}
			want := `{"time_ms":1767323045000,"events":[` + tt.want + `]}`
			if got := string(reqs[0].body); got != want {
				t.Fatalf("body\n got %s\nwant %s", got, want)
			}
			if !json.Valid(reqs[0].body) {
				t.Fatalf("body is not valid JSON: %s", reqs[0].body)
			}
		})
	}
}

// TestHeadersAndSignature checks the headers of a request and its signature with
// crypto/hmac, and that custom headers cannot replace the signature headers.
func TestHeadersAndSignature(t *testing.T) {
	rc := newReceiver(t, nil)
	w := hook(rc.url())
	w.Headers = map[string]string{
		"X-Custom":           "v1",
		"authorization":      "Bearer t0k3n",
		"X-Pusher-Signature": "forged",
		"X-Pusher-Key":       "forged",
		"Content-Type":       "text/plain",
		"Host":               "hooks.example.com",
	}
	s := newSender(t, []config.App{testApp(w)}, Options{BatchInterval: -1}, nil)
	s.ChannelOccupied(appID, "my-channel")
	r := rc.waitRequests(t, 1)[0]

	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write(r.body)
	want := hex.EncodeToString(mac.Sum(nil))
	tests := []struct {
		header string
		want   string
	}{
		{"Content-Type", "application/json"},
		{"X-Pusher-Key", appKey},
		{"X-Pusher-Signature", want},
		{"X-Custom", "v1"},
		{"Authorization", "Bearer t0k3n"},
	}
	for _, tt := range tests {
		if got := r.header.Values(tt.header); len(got) != 1 || got[0] != tt.want {
			t.Errorf("%s = %q, want [%q]", tt.header, got, tt.want)
		}
	}
	if r.host != "hooks.example.com" {
		t.Errorf("Host = %q, want hooks.example.com", r.host)
	}
	if sig := r.header.Get("X-Pusher-Signature"); sig != strings.ToLower(sig) || len(sig) != 64 {
		t.Errorf("signature %q is not 64 lowercase hex digits", sig)
	}
	if !Verify(appSecret, r.body, r.header.Get("X-Pusher-Signature")) {
		t.Error("Verify rejects the signature sent")
	}
	if Verify(appSecret, append(r.body, ' '), r.header.Get("X-Pusher-Signature")) {
		t.Error("Verify accepts a changed body")
	}
}

// TestFiltering checks that each endpoint gets only its event types on channels with its
// prefix, and that apps without webhooks (or unknown apps) cost nothing.
func TestFiltering(t *testing.T) {
	all := newReceiver(t, nil)
	occ := newReceiver(t, nil)
	priv := newReceiver(t, nil)
	pres := newReceiver(t, nil)
	privHook := hook(priv.url(), "client_event", "channel_occupied")
	privHook.ChannelPrefix = "private-"
	presHook := hook(pres.url())
	presHook.ChannelPrefix = "presence-"
	other := config.App{ID: "other", Key: "other-key", Secret: "s"}
	other.ApplyDefaults()
	s := newSender(t, []config.App{testApp(hook(all.url()), hook(occ.url(), "channel_occupied"), privHook, presHook), other},
		Options{VacateDelay: -1}, nil)

	for _, ch := range []string{"public", "private-x", "presence-y"} {
		s.ChannelOccupied(appID, ch)
		s.SubscriptionCount(appID, ch, 1)
		s.ClientEvent(appID, ch, "client-e", json.RawMessage(`{}`), "1.1", "")
		s.ChannelVacated(appID, ch)
	}
	s.MemberAdded(appID, "presence-y", "u")
	s.ChannelOccupied("other", "public")
	s.ChannelOccupied("unknown", "public")
	closeNow(t, s)

	tests := []struct {
		name string
		rc   *receiver
		want []string
	}{
		{"every type, no prefix", all, []string{
			"channel_occupied public", "subscription_count public", "client_event public", "channel_vacated public",
			"channel_occupied private-x", "subscription_count private-x", "client_event private-x", "channel_vacated private-x",
			"channel_occupied presence-y", "subscription_count presence-y", "client_event presence-y", "channel_vacated presence-y",
			"member_added presence-y u",
		}},
		{"channel_occupied only", occ, []string{
			"channel_occupied public", "channel_occupied private-x", "channel_occupied presence-y",
		}},
		{"two types, private- prefix", priv, []string{
			"channel_occupied private-x", "client_event private-x",
		}},
		{"every type, presence- prefix", pres, []string{
			"channel_occupied presence-y", "subscription_count presence-y", "client_event presence-y", "channel_vacated presence-y",
			"member_added presence-y u",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rc.events(t); !slices.Equal(got, tt.want) {
				t.Fatalf("events\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestBatching checks that events gather into few requests: full batches go at once, a
// partial one after BatchInterval (or at Close), and order is kept.
func TestBatching(t *testing.T) {
	tests := []struct {
		name      string
		events    int
		batchSize int
		interval  time.Duration
		// before are the request sizes expected before Close, after all of them.
		before, after []int
	}{
		{"full batches go at once, the rest at Close", 250, 100, time.Hour, []int{100, 100}, []int{100, 100, 50}},
		{"a partial batch goes after the interval", 10, 100, 20 * time.Millisecond, []int{10}, []int{10}},
		{"exactly one batch", 5, 5, time.Hour, []int{5}, []int{5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			m := &fakeMetrics{}
			s := newSender(t, []config.App{testApp(hook(rc.url(), "subscription_count"))},
				Options{BatchSize: tt.batchSize, BatchInterval: tt.interval, Metrics: m}, nil)
			for i := range tt.events {
				s.SubscriptionCount(appID, "c", i)
			}
			rc.waitRequests(t, len(tt.before))
			if got := sizes(t, rc); !slices.Equal(got, tt.before) {
				t.Fatalf("before Close: request sizes %v, want %v", got, tt.before)
			}
			closeNow(t, s)
			if got := sizes(t, rc); !slices.Equal(got, tt.after) {
				t.Fatalf("after Close: request sizes %v, want %v", got, tt.after)
			}
			var counts []int
			for _, r := range rc.requests() {
				for _, ev := range decode(t, r.body).Events {
					counts = append(counts, int(ev["subscription_count"].(float64)))
				}
			}
			for i, c := range counts {
				if c != i {
					t.Fatalf("event %d has count %d: order not kept", i, c)
				}
			}
			if d, _, dropped, _ := m.snapshot(); d != tt.events || dropped != 0 {
				t.Fatalf("delivered %d dropped %d, want %d and 0", d, dropped, tt.events)
			}
		})
	}
}

func sizes(t testing.TB, rc *receiver) []int {
	t.Helper()
	var out []int
	for _, r := range rc.requests() {
		out = append(out, len(decode(t, r.body).Events))
	}
	return out
}

// TestDelayedEvents checks channel_vacated and member_removed: sent after the delay when
// still true, not sent when the channel (user) came back within it, and never producing a
// second channel_occupied (member_added) for a come-back.
func TestDelayedEvents(t *testing.T) {
	const ch, pch, user = "my-channel", "presence-room", "u1"
	tests := []struct {
		name  string
		delay time.Duration
		// steps drives the sender; it may wait (for the re-check) using t.
		steps func(t *testing.T, s *Sender, chk *fakeChecker)
		want  []string
	}{
		{"vacated stays vacant: sent after the delay", 30 * time.Millisecond,
			func(t *testing.T, s *Sender, chk *fakeChecker) {
				s.ChannelOccupied(appID, ch)
				s.ChannelVacated(appID, ch)
				waitFor(t, "the re-check", func() bool { return chk.callCount() >= 1 })
			},
			[]string{"channel_occupied my-channel", "channel_vacated my-channel"}},
		{"re-occupied within the delay: neither vacated nor a second occupied", time.Hour,
			func(t *testing.T, s *Sender, chk *fakeChecker) {
				s.ChannelOccupied(appID, ch)
				s.ChannelVacated(appID, ch)
				chk.setOccupied(ch, true)
				s.ChannelOccupied(appID, ch)
			},
			[]string{"channel_occupied my-channel"}},
		{"re-check finds it occupied (observer call still to come): nothing more", 20 * time.Millisecond,
			func(t *testing.T, s *Sender, chk *fakeChecker) {
				s.ChannelOccupied(appID, ch)
				chk.setOccupied(ch, true)
				s.ChannelVacated(appID, ch)
				waitFor(t, "the re-check", func() bool { return chk.callCount() >= 1 })
				s.ChannelOccupied(appID, ch)
			},
			[]string{"channel_occupied my-channel"}},
		{"occupied again after a real vacate is reported", 20 * time.Millisecond,
			func(t *testing.T, s *Sender, chk *fakeChecker) {
				s.ChannelOccupied(appID, ch)
				s.ChannelVacated(appID, ch)
				waitFor(t, "the re-check", func() bool { return chk.callCount() >= 1 })
				s.ChannelOccupied(appID, ch)
			},
			[]string{"channel_occupied my-channel", "channel_vacated my-channel", "channel_occupied my-channel"}},
		{"Close re-checks pending events at once", time.Hour,
			func(t *testing.T, s *Sender, chk *fakeChecker) {
				s.ChannelOccupied(appID, ch)
				s.MemberAdded(appID, pch, user)
				s.MemberRemoved(appID, pch, user)
				s.ChannelVacated(appID, ch)
			},
			[]string{"channel_occupied my-channel", "member_added presence-room u1", "member_removed presence-room u1", "channel_vacated my-channel"}},
		{"member left for good: removed after the delay", 20 * time.Millisecond,
			func(t *testing.T, s *Sender, chk *fakeChecker) {
				s.MemberAdded(appID, pch, user)
				s.MemberRemoved(appID, pch, user)
				waitFor(t, "the re-check", func() bool { return chk.callCount() >= 1 })
			},
			[]string{"member_added presence-room u1", "member_removed presence-room u1"}},
		{"member back within the delay: no removed, no second added", time.Hour,
			func(t *testing.T, s *Sender, chk *fakeChecker) {
				s.MemberAdded(appID, pch, user)
				s.MemberRemoved(appID, pch, user)
				chk.setMember(pch, user, true)
				s.MemberAdded(appID, pch, user)
			},
			[]string{"member_added presence-room u1"}},
		{"re-check finds the member present: no removed", 20 * time.Millisecond,
			func(t *testing.T, s *Sender, chk *fakeChecker) {
				s.MemberAdded(appID, pch, user)
				chk.setMember(pch, user, true)
				s.MemberRemoved(appID, pch, user)
				waitFor(t, "the re-check", func() bool { return chk.callCount() >= 1 })
				s.MemberAdded(appID, pch, user)
			},
			[]string{"member_added presence-room u1"}},
		{"members are tracked per user", time.Hour,
			func(t *testing.T, s *Sender, chk *fakeChecker) {
				s.MemberAdded(appID, pch, "a")
				s.MemberAdded(appID, pch, "b")
				s.MemberRemoved(appID, pch, "a")
				chk.setMember(pch, "b", true)
			},
			[]string{"member_added presence-room a", "member_added presence-room b", "member_removed presence-room a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			chk := newFakeChecker()
			s := newSender(t, []config.App{testApp(hook(rc.url()))},
				Options{VacateDelay: tt.delay, BatchInterval: time.Hour, Checker: chk}, nil)
			start := time.Now()
			tt.steps(t, s, chk)
			closeNow(t, s)
			if got := rc.events(t); !slices.Equal(got, tt.want) {
				t.Fatalf("events\n got %q\nwant %q", got, tt.want)
			}
			if tt.delay < time.Hour && slices.ContainsFunc(tt.want, func(e string) bool {
				return strings.HasPrefix(e, "channel_vacated") || strings.HasPrefix(e, "member_removed")
			}) {
				if took := chk.firstCallAt().Sub(start); took < tt.delay {
					t.Fatalf("re-checked after %s, before the %s delay", took, tt.delay)
				}
			}
		})
	}
}

// TestObserverAfterClose checks that events after Close are dropped and counted, not sent.
func TestObserverAfterClose(t *testing.T) {
	rc := newReceiver(t, nil)
	m := &fakeMetrics{}
	s := newSender(t, []config.App{testApp(hook(rc.url()), hook(rc.url(), "client_event"))}, Options{Metrics: m}, nil)
	closeNow(t, s)
	s.ChannelOccupied(appID, "c")
	s.ChannelVacated(appID, "c")
	s.MemberAdded(appID, "presence-c", "u")
	s.MemberRemoved(appID, "presence-c", "u")
	s.ClientEvent(appID, "private-c", "client-x", json.RawMessage(`1`), "1.1", "")
	if _, _, dropped, _ := m.snapshot(); dropped != 6 {
		t.Fatalf("dropped %d, want 6 (one per event per endpoint wanting it)", dropped)
	}
	if n := rc.count(); n != 0 {
		t.Fatalf("%d requests after Close", n)
	}
}

// TestManyApps checks that each app's events are signed with its own key and secret.
func TestManyApps(t *testing.T) {
	rc := newReceiver(t, nil)
	var apps []config.App
	for i := range 3 {
		a := config.App{ID: fmt.Sprint("app", i), Key: fmt.Sprint("key", i), Secret: fmt.Sprint("secret", i),
			Webhooks: []config.Webhook{hook(rc.url())}}
		a.ApplyDefaults()
		apps = append(apps, a)
	}
	s := newSender(t, apps, Options{}, nil)
	for i := range 3 {
		s.CacheMiss(fmt.Sprint("app", i), fmt.Sprint("cache-", i))
	}
	closeNow(t, s)
	reqs := rc.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for _, r := range reqs {
		ch := decode(t, r.body).Events[0]["channel"].(string)
		i := strings.TrimPrefix(ch, "cache-")
		if key := r.header.Get("X-Pusher-Key"); key != "key"+i {
			t.Errorf("%s: key %q, want key%s", ch, key, i)
		}
		if !Verify("secret"+i, r.body, r.header.Get("X-Pusher-Signature")) {
			t.Errorf("%s: not signed with secret%s", ch, i)
		}
	}
}
