// Package pushtest is the conformance suite of push.Store: every implementation (Memory,
// Postgres) must pass Run.
package pushtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pushwire/pushwire/push"
)

// Run runs the conformance suite; newStore returns an empty store for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) push.Store) {
	t.Run("Devices", func(t *testing.T) { testDevices(t, newStore(t)) })
	t.Run("Subscriptions", func(t *testing.T) { testSubscriptions(t, newStore(t)) })
	t.Run("Queue", func(t *testing.T) { testQueue(t, newStore(t)) })
	t.Run("Leases", func(t *testing.T) { testLeases(t, newStore(t)) })
	t.Run("Cancel", func(t *testing.T) { testCancel(t, newStore(t)) })
	t.Run("Events", func(t *testing.T) { testEvents(t, newStore(t)) })
	t.Run("Prune", func(t *testing.T) { testPrune(t, newStore(t)) })
}

func testPrune(t *testing.T, s push.Store) {
	for _, id := range []string{"old-done", "old-waiting"} {
		_, _, err := s.CreatePublish(ctx(), NewPublish(id))
		must(t, err)
	}
	c, _ := s.ClaimPublish(ctx(), T0, T0.Add(time.Minute))
	_, err := s.PlanPublish(ctx(), c, []*push.Delivery{delivery(c.ID, "d1", T0)}, true)
	must(t, err)
	ds, _ := s.ClaimDeliveries(ctx(), T0, T0.Add(time.Minute), 10)
	ds[0].State, ds[0].Attempts = push.DeliveryDelivered, 1
	must(t, s.FinishDeliveries(ctx(), ds))
	must(t, s.AddDeliveryEvent(ctx(), &push.DeliveryEvent{AppID: "a", PublishID: c.ID, EventID: "e", Result: []byte(`{}`)}))
	if n, err := s.PruneFinished(ctx(), T0, 10); err != nil || n != 0 {
		t.Fatalf("prune before creation: %d %v", n, err)
	}
	n, err := s.PruneFinished(ctx(), T0.Add(time.Second), 10)
	must(t, err)
	if n != 1 {
		t.Fatalf("pruned %d, want 1 (only the finished one)", n)
	}
	if _, err := s.GetPublish(ctx(), "a", c.ID); err != push.ErrNotFound {
		t.Errorf("pruned publish still there: %v", err)
	}
	if ds, _ := s.ListDeliveries(ctx(), "a", c.ID, "", 10); len(ds) != 0 {
		t.Errorf("its deliveries remain: %d", len(ds))
	}
	if evs, _ := s.ListDeliveryEvents(ctx(), "a", c.ID, 10); len(evs) != 0 {
		t.Errorf("its receipts remain: %d", len(evs))
	}
	other := "old-waiting"
	if c.ID == other {
		other = "old-done"
	}
	if _, err := s.GetPublish(ctx(), "a", other); err != nil {
		t.Errorf("the unfinished publish was pruned: %v", err)
	}
}

// T0 is the suite's reference time (whole milliseconds, as Postgres keeps microseconds).
var T0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func ctx() context.Context { return context.Background() }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Device returns an FCM device of app a owned by client.
func Device(app, id, client string) *push.Device {
	return &push.Device{AppID: app, ID: id, ClientID: client, Platform: push.FCM, Token: "tok-" + id, FormFactor: "phone",
		OS: "android", Timezone: "UTC", Locale: "en", SecretHash: push.HashIdentityToken("x"), State: push.StateActive, UpdatedAt: T0}
}

func testDevices(t *testing.T, s push.Store) {
	created, err := s.PutDevice(ctx(), Device("a", "d1", "u1"))
	must(t, err)
	if !created {
		t.Fatal("first PutDevice: created = false")
	}
	web := Device("a", "d2", "u1")
	web.Platform, web.Token, web.Metadata = push.Web, "", []byte(`{"k":1}`)
	web.Web = &push.WebSubscription{Endpoint: "https://push.example/x", P256dh: "p", Auth: "q"}
	_, err = s.PutDevice(ctx(), web)
	must(t, err)
	_, err = s.PutDevice(ctx(), Device("a", "d3", "u2"))
	must(t, err)
	_, err = s.PutDevice(ctx(), Device("other", "d1", "u1"))
	must(t, err)
	again := Device("a", "d1", "u1")
	again.Token = "new"
	created, err = s.PutDevice(ctx(), again)
	must(t, err)
	if created {
		t.Error("second PutDevice: created = true")
	}
	got, err := s.GetDevice(ctx(), "a", "d2")
	must(t, err)
	if got.Web == nil || got.Web.Endpoint != "https://push.example/x" || string(got.Metadata) != `{"k":1}` || got.ClientID != "u1" || !got.UpdatedAt.Equal(T0) {
		t.Errorf("GetDevice d2 = %+v", got)
	}
	if d, _ := s.GetDevice(ctx(), "a", "d1"); d == nil || d.Token != "new" {
		t.Errorf("d1 token not replaced: %+v", d)
	}
	if _, err := s.GetDevice(ctx(), "a", "nope"); err != push.ErrNotFound {
		t.Errorf("GetDevice missing: err = %v, want ErrNotFound", err)
	}
	ds, err := s.GetDevices(ctx(), "a", []string{"d3", "nope", "d1"})
	must(t, err)
	if len(ds) != 2 || ds[0].ID != "d3" || ds[1].ID != "d1" {
		t.Errorf("GetDevices = %v", ids(ds))
	}
	page, err := s.ListDevices(ctx(), "a", "", "", 2)
	must(t, err)
	if fmt.Sprint(ids(page)) != "[d1 d2]" {
		t.Errorf("page 1 = %v", ids(page))
	}
	page, err = s.ListDevices(ctx(), "a", "", "d2", 2)
	must(t, err)
	if fmt.Sprint(ids(page)) != "[d3]" {
		t.Errorf("page 2 = %v", ids(page))
	}
	page, err = s.ListDevices(ctx(), "a", "u1", "", 10)
	must(t, err)
	if fmt.Sprint(ids(page)) != "[d1 d2]" {
		t.Errorf("devices of u1 = %v", ids(page))
	}
	// A device moved to another user leaves the old user's list.
	moved := Device("a", "d2", "u2")
	_, err = s.PutDevice(ctx(), moved)
	must(t, err)
	page, _ = s.ListDevices(ctx(), "a", "u1", "", 10)
	if fmt.Sprint(ids(page)) != "[d1]" {
		t.Errorf("devices of u1 after move = %v", ids(page))
	}
	must(t, s.MarkDevice(ctx(), "a", "d1", true, "boom"))
	if d, _ := s.GetDevice(ctx(), "a", "d1"); d.State != push.StateFailing || d.FailureCount != 1 || d.ErrorReason != "boom" {
		t.Errorf("after MarkDevice failed: %+v", d)
	}
	must(t, s.MarkDevice(ctx(), "a", "d1", false, ""))
	if d, _ := s.GetDevice(ctx(), "a", "d1"); d.State != push.StateActive || d.FailureCount != 0 {
		t.Errorf("after MarkDevice ok: %+v", d)
	}
	_, err = s.PutSubscription(ctx(), push.Subscription{AppID: "a", Channel: "c", DeviceID: "d1"})
	must(t, err)
	ok, err := s.DeleteDevice(ctx(), "a", "d1")
	must(t, err)
	if !ok {
		t.Error("DeleteDevice: false")
	}
	if ok, _ := s.DeleteDevice(ctx(), "a", "d1"); ok {
		t.Error("second DeleteDevice: true")
	}
	if subs, _ := s.ListSubscriptions(ctx(), "a", push.Filter{Channel: "c"}, "", 10); len(subs) != 0 {
		t.Errorf("subscriptions of a deleted device remain: %v", subs)
	}
	if d, _ := s.GetDevice(ctx(), "other", "d1"); d == nil {
		t.Error("another app's device was deleted")
	}
}

func ids(ds []*push.Device) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func testSubscriptions(t *testing.T, s push.Store) {
	put := func(sub push.Subscription) bool {
		t.Helper()
		sub.AppID = "a"
		c, err := s.PutSubscription(ctx(), sub)
		must(t, err)
		return c
	}
	if !put(push.Subscription{Channel: "news", DeviceID: "d2"}) || put(push.Subscription{Channel: "news", DeviceID: "d2"}) {
		t.Error("PutSubscription created flags wrong")
	}
	put(push.Subscription{Channel: "news", DeviceID: "d1"})
	put(push.Subscription{Channel: "news", ClientID: "u1"})
	put(push.Subscription{Channel: "alerts", DeviceID: "d1"})
	put(push.Subscription{Channel: "alerts", ClientID: "u1"})
	list := func(f push.Filter, after string, limit int) string {
		t.Helper()
		subs, err := s.ListSubscriptions(ctx(), "a", f, after, limit)
		must(t, err)
		out := ""
		for _, sb := range subs {
			out += sb.Channel + "/" + sb.DeviceID + sb.ClientID + " "
		}
		return out
	}
	if got := list(push.Filter{Channel: "news"}, "", 10); got != "news/d1 news/d2 news/u1 " {
		t.Errorf("news = %q", got)
	}
	if got := list(push.Filter{Channel: "news"}, "d:d1", 1); got != "news/d2 " {
		t.Errorf("news after d1 = %q", got)
	}
	if got := list(push.Filter{DeviceID: "d1"}, "", 10); got != "alerts/d1 news/d1 " {
		t.Errorf("device d1 = %q", got)
	}
	if got := list(push.Filter{ClientID: "u1"}, "alerts", 10); got != "news/u1 " {
		t.Errorf("user u1 after alerts = %q", got)
	}
	if got := list(push.Filter{}, "", 3); got != "alerts/d1 alerts/u1 news/d1 " {
		t.Errorf("all = %q", got)
	}
	all, _ := s.ListSubscriptions(ctx(), "a", push.Filter{}, "", 3)
	if got := list(push.Filter{}, all[2].Position(push.Filter{}), 3); got != "news/d2 news/u1 " {
		t.Errorf("all page 2 = %q", got)
	}
	chs, err := s.ListChannels(ctx(), "a", "", 10)
	must(t, err)
	if fmt.Sprint(chs) != "[alerts news]" {
		t.Errorf("channels = %v", chs)
	}
	n, err := s.DeleteSubscriptions(ctx(), "a", push.Filter{Channel: "news", DeviceID: "d1"})
	must(t, err)
	if n != 1 || list(push.Filter{Channel: "news"}, "", 10) != "news/d2 news/u1 " {
		t.Errorf("delete one: n = %d", n)
	}
	n, _ = s.DeleteSubscriptions(ctx(), "a", push.Filter{ClientID: "u1"})
	if n != 2 {
		t.Errorf("delete user u1: n = %d, want 2", n)
	}
	n, _ = s.DeleteSubscriptions(ctx(), "a", push.Filter{Channel: "alerts"})
	if n != 1 {
		t.Errorf("delete channel alerts: n = %d, want 1", n)
	}
	chs, _ = s.ListChannels(ctx(), "a", "", 10)
	if fmt.Sprint(chs) != "[news]" {
		t.Errorf("channels after deletes = %v", chs)
	}
}

// NewPublish returns an accepted publish of app a due at T0.
func NewPublish(id string) *push.Publish {
	return &push.Publish{AppID: "a", ID: id, State: push.PublishAccepted, CreatedAt: T0, Due: T0,
		Request: push.Request{PublishID: id, Targets: []push.Target{{Kind: push.TargetChannel, ID: "news"}},
			Payload: push.Payload{Title: "t", Body: "b", Data: []byte(`{"k":"v"}`)}, ExpiresAt: T0.Add(time.Hour)}}
}

func delivery(pubID, dev string, due time.Time) *push.Delivery {
	return &push.Delivery{AppID: "a", PublishID: pubID, DeviceID: dev, ClientID: "u", Platform: push.APNs, State: push.DeliveryPending,
		Due: due, ExpiresAt: T0.Add(time.Hour), UpdatedAt: T0}
}

func testQueue(t *testing.T, s push.Store) {
	p, created, err := s.CreatePublish(ctx(), NewPublish("p1"))
	must(t, err)
	if !created || p.Request.Payload.Title != "t" || string(p.Request.Payload.Data) != `{"k":"v"}` || p.Request.Targets[0].ID != "news" {
		t.Fatalf("CreatePublish = %+v, %v", p, created)
	}
	if _, created, _ := s.CreatePublish(ctx(), NewPublish("p1")); created {
		t.Error("a repeated publish id was created again")
	}
	later := NewPublish("p2")
	later.State, later.Due = push.PublishScheduled, T0.Add(time.Minute)
	_, _, err = s.CreatePublish(ctx(), later)
	must(t, err)
	if due, ok, err := s.NextDue(ctx()); err != nil || !ok || !due.Equal(T0) {
		t.Errorf("NextDue = %v %v %v, want T0", due, ok, err)
	}
	c, err := s.ClaimPublish(ctx(), T0, T0.Add(time.Minute))
	must(t, err)
	if c == nil || c.ID != "p1" || c.State != push.PublishPlanning {
		t.Fatalf("ClaimPublish = %+v", c)
	}
	if c2, _ := s.ClaimPublish(ctx(), T0, T0.Add(time.Minute)); c2 != nil {
		t.Fatalf("second ClaimPublish at T0 = %s (p2 is not due, p1 is leased)", c2.ID)
	}
	c.Cursor = "page1"
	added, err := s.PlanPublish(ctx(), c, []*push.Delivery{delivery("p1", "d1", T0), delivery("p1", "d2", T0), delivery("p1", "d1", T0)}, false)
	must(t, err)
	if added != 2 || c.Counters.Planned != 2 {
		t.Errorf("PlanPublish added %d, planned %d; want 2, 2", added, c.Counters.Planned)
	}
	added, err = s.PlanPublish(ctx(), c, []*push.Delivery{delivery("p1", "d2", T0), delivery("p1", "d3", T0.Add(time.Second))}, true)
	must(t, err)
	if added != 1 || c.Counters.Planned != 3 || c.State != push.PublishDispatching {
		t.Errorf("final PlanPublish: added %d, %+v", added, c)
	}
	ds, err := s.ClaimDeliveries(ctx(), T0, T0.Add(time.Minute), 10)
	must(t, err)
	if len(ds) != 2 {
		t.Fatalf("ClaimDeliveries at T0 = %d, want 2 (d3 is due later)", len(ds))
	}
	if more, _ := s.ClaimDeliveries(ctx(), T0, T0.Add(time.Minute), 10); len(more) != 0 {
		t.Errorf("claimed again while leased: %d", len(more))
	}
	// d1 delivered, d2 retried in 5s.
	ds[0].State, ds[0].Attempts, ds[0].ProviderID = push.DeliveryDelivered, 1, "apns-1"
	ds[1].State, ds[1].Attempts, ds[1].Due, ds[1].Reason, ds[1].Status = push.DeliveryPending, 1, T0.Add(5*time.Second), "retry", 503
	must(t, s.FinishDeliveries(ctx(), ds))
	p, _ = s.GetPublish(ctx(), "a", "p1")
	if p.Counters.Succeeded != 1 || p.Counters.Retries != 1 || p.State != push.PublishDispatching {
		t.Errorf("after first batch: %+v %s", p.Counters, p.State)
	}
	if due, ok, _ := s.NextDue(ctx()); !ok || !due.Equal(T0.Add(time.Second)) {
		t.Errorf("NextDue = %v, want T0+1s (d3)", due)
	}
	ds, _ = s.ClaimDeliveries(ctx(), T0.Add(5*time.Second), T0.Add(time.Minute), 10)
	if len(ds) != 2 || ds[0].DeviceID != "d3" || ds[1].DeviceID != "d2" || ds[1].Attempts != 1 || ds[1].Reason != "retry" {
		t.Fatalf("second claim = %+v", ds)
	}
	ds[0].State, ds[0].Attempts, ds[0].TokenRemoved = push.DeliveryFailed, 1, true
	ds[1].State, ds[1].Attempts = push.DeliveryDelivered, 2
	must(t, s.FinishDeliveries(ctx(), ds))
	// A finish of a delivery no longer pending is ignored.
	must(t, s.FinishDeliveries(ctx(), ds))
	p, _ = s.GetPublish(ctx(), "a", "p1")
	if p.Counters != (push.Counters{Planned: 3, Succeeded: 2, Failed: 1, Retries: 1, Removed: 1}) || p.State != push.PublishPartiallySucceeded {
		t.Errorf("final publish: %+v %s", p.Counters, p.State)
	}
	page, err := s.ListDeliveries(ctx(), "a", "p1", "", 2)
	must(t, err)
	if len(page) != 2 || page[0].DeviceID != "d1" || page[0].ProviderID != "apns-1" || page[1].DeviceID != "d2" || page[1].Attempts != 2 {
		t.Errorf("ListDeliveries page 1 = %+v", page)
	}
	page, _ = s.ListDeliveries(ctx(), "a", "p1", "d2", 2)
	if len(page) != 1 || !page[0].TokenRemoved || page[0].State != push.DeliveryFailed {
		t.Errorf("ListDeliveries page 2 = %+v", page)
	}
	// The scheduled publish becomes claimable at its due time; planned empty, it succeeds.
	c, _ = s.ClaimPublish(ctx(), T0.Add(time.Minute), T0.Add(2*time.Minute))
	if c == nil || c.ID != "p2" {
		t.Fatalf("claim p2 = %+v", c)
	}
	_, err = s.PlanPublish(ctx(), c, nil, true)
	must(t, err)
	if p, _ := s.GetPublish(ctx(), "a", "p2"); p.State != push.PublishSucceeded {
		t.Errorf("empty publish state = %s", p.State)
	}
	if _, ok, _ := s.NextDue(ctx()); ok {
		t.Error("NextDue reports work after everything finished")
	}
	if _, err := s.GetPublish(ctx(), "a", "nope"); err != push.ErrNotFound {
		t.Errorf("GetPublish missing: %v", err)
	}
}

func testLeases(t *testing.T, s push.Store) {
	p, _, err := s.CreatePublish(ctx(), NewPublish("p1"))
	must(t, err)
	c, _ := s.ClaimPublish(ctx(), T0, T0.Add(time.Minute))
	if c == nil {
		t.Fatal("no claim")
	}
	// A planner that died: after its lease the publish is claimable again, cursor kept.
	c.Cursor = "half"
	_, err = s.PlanPublish(ctx(), c, []*push.Delivery{delivery(p.ID, "d1", T0)}, false)
	must(t, err)
	again, _ := s.ClaimPublish(ctx(), T0.Add(2*time.Minute), T0.Add(3*time.Minute))
	if again == nil || again.Cursor != "half" || again.Counters.Planned != 1 {
		t.Fatalf("reclaim after lease = %+v", again)
	}
	_, err = s.PlanPublish(ctx(), again, nil, true)
	must(t, err)
	ds, _ := s.ClaimDeliveries(ctx(), T0, T0.Add(time.Minute), 10)
	if len(ds) != 1 {
		t.Fatalf("claim = %d", len(ds))
	}
	if due, ok, _ := s.NextDue(ctx()); !ok || !due.Equal(T0.Add(time.Minute)) {
		t.Errorf("NextDue while leased = %v, want the lease end", due)
	}
	// A sender that died: the delivery comes back after its lease, attempts unchanged.
	if ds2, _ := s.ClaimDeliveries(ctx(), T0.Add(30*time.Second), T0.Add(time.Minute), 10); len(ds2) != 0 {
		t.Fatal("claimed during the lease")
	}
	ds2, _ := s.ClaimDeliveries(ctx(), T0.Add(61*time.Second), T0.Add(2*time.Minute), 10)
	if len(ds2) != 1 || ds2[0].Attempts != 0 {
		t.Fatalf("reclaim after lease = %+v", ds2)
	}
	ds2[0].State, ds2[0].Attempts = push.DeliveryDelivered, 1
	must(t, s.FinishDeliveries(ctx(), ds2))
	if p, _ := s.GetPublish(ctx(), "a", "p1"); p.State != push.PublishSucceeded || p.Counters.Succeeded != 1 {
		t.Errorf("publish = %s %+v", p.State, p.Counters)
	}
}

func testCancel(t *testing.T, s push.Store) {
	p := NewPublish("p1")
	p.State, p.Due = push.PublishScheduled, T0.Add(time.Hour)
	_, _, err := s.CreatePublish(ctx(), p)
	must(t, err)
	got, err := s.CancelPublish(ctx(), "a", "p1")
	must(t, err)
	if got.State != push.PublishCancelled {
		t.Errorf("state = %s", got.State)
	}
	if c, _ := s.ClaimPublish(ctx(), T0.Add(2*time.Hour), T0.Add(3*time.Hour)); c != nil {
		t.Error("a cancelled publish was claimed")
	}
	_, _, err = s.CreatePublish(ctx(), NewPublish("p2"))
	must(t, err)
	c, _ := s.ClaimPublish(ctx(), T0, T0.Add(time.Minute))
	_, _ = s.PlanPublish(ctx(), c, []*push.Delivery{delivery("p2", "d1", T0)}, true)
	if got, _ := s.CancelPublish(ctx(), "a", "p2"); got.State != push.PublishDispatching {
		t.Errorf("cancel of a dispatching publish changed it to %s", got.State)
	}
	if _, err := s.CancelPublish(ctx(), "a", "nope"); err != push.ErrNotFound {
		t.Errorf("cancel missing: %v", err)
	}
}

func testEvents(t *testing.T, s push.Store) {
	for i, id := range []string{"e1", "e2", "e1"} {
		must(t, s.AddDeliveryEvent(ctx(), &push.DeliveryEvent{AppID: "a", PublishID: "p", EventID: id, OccurredAt: int64(i), Result: []byte(`{"outcome":"accepted"}`)}))
	}
	evs, err := s.ListDeliveryEvents(ctx(), "a", "p", 10)
	must(t, err)
	if len(evs) != 2 || evs[0].EventID != "e1" || evs[1].EventID != "e2" || string(evs[0].Result) != `{"outcome":"accepted"}` {
		t.Errorf("events = %+v", evs)
	}
}
