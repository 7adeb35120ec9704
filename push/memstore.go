package push

import (
	"container/heap"
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// Memory is the in-process Store: the default, gone on restart. One mutex guards it; no
// method does I/O. Sorted key lists are rebuilt lazily after changes, so bulk registration
// costs one sort per list burst rather than one insertion per device.
type Memory struct {
	mu   sync.Mutex
	apps map[string]*memApp
	// pending orders every pending delivery by due time (entries are checked on pop
	// against the delivery's current due time, so a rescheduled one is never sent twice).
	pending dueHeap
	leased  map[*Delivery]struct{}
	seq     uint64
}

type memApp struct {
	devices  sortedMap[*Device]
	byClient map[string]*sortedMap[struct{}]
	// subs: channel → key → subscription; devSubs: device id → channel set; userSubs:
	// client id → channel set.
	subs     map[string]*sortedMap[Subscription]
	channels sortedMap[struct{}]
	devSubs  map[string]*sortedMap[struct{}]
	userSubs map[string]*sortedMap[struct{}]

	publishes map[string]*Publish
	// deliveries: publish id → device id → delivery.
	deliveries map[string]*sortedMap[*Delivery]
	events     map[string][]*DeliveryEvent
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{apps: map[string]*memApp{}, leased: map[*Delivery]struct{}{}}
}

var _ Store = (*Memory)(nil)

func (m *Memory) app(id string) *memApp {
	a := m.apps[id]
	if a == nil {
		a = &memApp{byClient: map[string]*sortedMap[struct{}]{}, subs: map[string]*sortedMap[Subscription]{},
			devSubs: map[string]*sortedMap[struct{}]{}, userSubs: map[string]*sortedMap[struct{}]{},
			publishes: map[string]*Publish{}, deliveries: map[string]*sortedMap[*Delivery]{}, events: map[string][]*DeliveryEvent{}}
		m.apps[id] = a
	}
	return a
}

// sortedMap is a map with lazily sorted keys for keyset paging.
type sortedMap[V any] struct {
	m     map[string]V
	keys  []string
	dirty bool
}

func (s *sortedMap[V]) get(k string) (V, bool) {
	v, ok := s.m[k]
	return v, ok
}

func (s *sortedMap[V]) put(k string, v V) bool {
	if s.m == nil {
		s.m = map[string]V{}
	}
	_, had := s.m[k]
	s.m[k] = v
	if !had {
		if n := len(s.keys); !s.dirty && (n == 0 || s.keys[n-1] < k) {
			s.keys = append(s.keys, k)
		} else {
			s.dirty = true
		}
	}
	return !had
}

func (s *sortedMap[V]) del(k string) bool {
	if _, ok := s.m[k]; !ok {
		return false
	}
	delete(s.m, k)
	s.dirty = true
	return true
}

func (s *sortedMap[V]) len() int { return len(s.m) }

// page returns up to limit keys after after.
func (s *sortedMap[V]) page(after string, limit int) []string {
	if s.dirty {
		s.keys = s.keys[:0]
		for k := range s.m {
			s.keys = append(s.keys, k)
		}
		slices.Sort(s.keys)
		s.dirty = false
	}
	i := 0
	if after != "" {
		i, _ = slices.BinarySearch(s.keys, after)
		if i < len(s.keys) && s.keys[i] == after {
			i++
		}
	}
	end := min(len(s.keys), i+limit)
	if i >= end {
		return nil
	}
	return s.keys[i:end]
}

func copyDevice(d *Device) *Device {
	c := *d
	if d.Web != nil {
		w := *d.Web
		c.Web = &w
	}
	return &c
}

func copyPublish(p *Publish) *Publish {
	c := *p
	return &c
}

func copyDelivery(d *Delivery) *Delivery {
	c := *d
	return &c
}

// PutDevice implements Store.
func (m *Memory) PutDevice(_ context.Context, d *Device) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.app(d.AppID)
	if old, ok := a.devices.get(d.ID); ok && old.ClientID != d.ClientID {
		if c := a.byClient[old.ClientID]; c != nil {
			c.del(d.ID)
		}
	}
	created := a.devices.put(d.ID, copyDevice(d))
	if d.ClientID != "" {
		c := a.byClient[d.ClientID]
		if c == nil {
			c = &sortedMap[struct{}]{}
			a.byClient[d.ClientID] = c
		}
		c.put(d.ID, struct{}{})
	}
	return created, nil
}

// GetDevice implements Store.
func (m *Memory) GetDevice(_ context.Context, appID, id string) (*Device, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d, ok := m.app(appID).devices.get(id); ok {
		return copyDevice(d), nil
	}
	return nil, ErrNotFound
}

// GetDevices implements Store.
func (m *Memory) GetDevices(_ context.Context, appID string, ids []string) ([]*Device, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.app(appID)
	out := make([]*Device, 0, len(ids))
	for _, id := range ids {
		if d, ok := a.devices.get(id); ok {
			out = append(out, copyDevice(d))
		}
	}
	return out, nil
}

// ListDevices implements Store.
func (m *Memory) ListDevices(_ context.Context, appID, clientID, after string, limit int) ([]*Device, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.app(appID)
	var keys []string
	if clientID != "" {
		c := a.byClient[clientID]
		if c == nil {
			return nil, nil
		}
		keys = c.page(after, limit)
	} else {
		keys = a.devices.page(after, limit)
	}
	out := make([]*Device, 0, len(keys))
	for _, k := range keys {
		d, _ := a.devices.get(k)
		out = append(out, copyDevice(d))
	}
	return out, nil
}

// DeleteDevice implements Store.
func (m *Memory) DeleteDevice(_ context.Context, appID, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.app(appID)
	d, ok := a.devices.get(id)
	if !ok {
		return false, nil
	}
	a.devices.del(id)
	if c := a.byClient[d.ClientID]; c != nil {
		c.del(id)
		if c.len() == 0 {
			delete(a.byClient, d.ClientID)
		}
	}
	a.deleteSubs(Filter{DeviceID: id})
	return true, nil
}

// MarkDevice implements Store.
func (m *Memory) MarkDevice(_ context.Context, appID, id string, failed bool, reason string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.app(appID).devices.get(id)
	if !ok {
		return nil
	}
	if failed {
		d.FailureCount++
		d.State, d.ErrorReason = StateFailing, reason
	} else {
		d.FailureCount, d.State, d.ErrorReason = 0, StateActive, ""
	}
	return nil
}

// PutSubscription implements Store.
func (m *Memory) PutSubscription(_ context.Context, s Subscription) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.app(s.AppID)
	ch := a.subs[s.Channel]
	if ch == nil {
		ch = &sortedMap[Subscription]{}
		a.subs[s.Channel] = ch
		a.channels.put(s.Channel, struct{}{})
	}
	created := ch.put(s.key(), s)
	idx, owner := a.userSubs, s.ClientID
	if s.DeviceID != "" {
		idx, owner = a.devSubs, s.DeviceID
	}
	set := idx[owner]
	if set == nil {
		set = &sortedMap[struct{}]{}
		idx[owner] = set
	}
	set.put(s.Channel, struct{}{})
	return created, nil
}

// ListSubscriptions implements Store.
func (m *Memory) ListSubscriptions(_ context.Context, appID string, f Filter, after string, limit int) ([]Subscription, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.app(appID)
	var out []Subscription
	switch {
	case f.Channel != "":
		ch := a.subs[f.Channel]
		if ch == nil {
			return nil, nil
		}
		if f.DeviceID != "" || f.ClientID != "" {
			if s, ok := ch.get(Subscription{DeviceID: f.DeviceID, ClientID: f.ClientID}.key()); ok && after < s.key() {
				out = append(out, s)
			}
			return out, nil
		}
		for _, k := range ch.page(after, limit) {
			s, _ := ch.get(k)
			out = append(out, s)
		}
	case f.DeviceID != "" || f.ClientID != "":
		idx, owner, key := a.userSubs, f.ClientID, Subscription{ClientID: f.ClientID}.key()
		if f.DeviceID != "" {
			idx, owner, key = a.devSubs, f.DeviceID, Subscription{DeviceID: f.DeviceID}.key()
		}
		set := idx[owner]
		if set == nil {
			return nil, nil
		}
		for _, chName := range set.page(after, limit) {
			s, _ := a.subs[chName].get(key)
			out = append(out, s)
		}
	default:
		chAfter, keyAfter, _ := strings.Cut(after, "\x00")
		for _, chName := range append([]string{chAfter}, a.channels.page(chAfter, limit)...) {
			ch := a.subs[chName]
			if ch == nil {
				continue
			}
			ka := ""
			if chName == chAfter {
				if after == "" {
					continue
				}
				ka = keyAfter
			}
			for _, k := range ch.page(ka, limit-len(out)) {
				s, _ := ch.get(k)
				out = append(out, s)
			}
			if len(out) >= limit {
				break
			}
		}
	}
	return out, nil
}

// DeleteSubscriptions implements Store.
func (m *Memory) DeleteSubscriptions(_ context.Context, appID string, f Filter) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.app(appID).deleteSubs(f), nil
}

func (a *memApp) deleteSubs(f Filter) int {
	var victims []Subscription
	switch {
	case f.Channel != "" && (f.DeviceID != "" || f.ClientID != ""):
		if ch := a.subs[f.Channel]; ch != nil {
			if s, ok := ch.get(Subscription{DeviceID: f.DeviceID, ClientID: f.ClientID}.key()); ok {
				victims = append(victims, s)
			}
		}
	case f.Channel != "":
		if ch := a.subs[f.Channel]; ch != nil {
			for _, s := range ch.m {
				victims = append(victims, s)
			}
		}
	case f.DeviceID != "" || f.ClientID != "":
		idx, owner, key := a.userSubs, f.ClientID, Subscription{ClientID: f.ClientID}.key()
		if f.DeviceID != "" {
			idx, owner, key = a.devSubs, f.DeviceID, Subscription{DeviceID: f.DeviceID}.key()
		}
		if set := idx[owner]; set != nil {
			for chName := range set.m {
				s, _ := a.subs[chName].get(key)
				victims = append(victims, s)
			}
		}
	}
	for _, s := range victims {
		ch := a.subs[s.Channel]
		ch.del(s.key())
		if ch.len() == 0 {
			delete(a.subs, s.Channel)
			a.channels.del(s.Channel)
		}
		idx, owner := a.userSubs, s.ClientID
		if s.DeviceID != "" {
			idx, owner = a.devSubs, s.DeviceID
		}
		if set := idx[owner]; set != nil {
			set.del(s.Channel)
			if set.len() == 0 {
				delete(idx, owner)
			}
		}
	}
	return len(victims)
}

// ListChannels implements Store.
func (m *Memory) ListChannels(_ context.Context, appID, after string, limit int) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.app(appID).channels.page(after, limit)), nil
}

// CreatePublish implements Store.
func (m *Memory) CreatePublish(_ context.Context, p *Publish) (*Publish, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.app(p.AppID)
	if old, ok := a.publishes[p.ID]; ok {
		return copyPublish(old), false, nil
	}
	a.publishes[p.ID] = copyPublish(p)
	return copyPublish(p), true, nil
}

// GetPublish implements Store.
func (m *Memory) GetPublish(_ context.Context, appID, id string) (*Publish, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.app(appID).publishes[id]; ok {
		return copyPublish(p), nil
	}
	return nil, ErrNotFound
}

// CancelPublish implements Store.
func (m *Memory) CancelPublish(_ context.Context, appID, id string) (*Publish, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.app(appID).publishes[id]
	if !ok {
		return nil, ErrNotFound
	}
	if p.State == PublishScheduled || p.State == PublishAccepted {
		p.State = PublishCancelled
	}
	return copyPublish(p), nil
}

// ClaimPublish implements Store.
func (m *Memory) ClaimPublish(_ context.Context, now, leaseUntil time.Time) (*Publish, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var best *Publish
	for _, a := range m.apps {
		for _, p := range a.publishes {
			if claimablePublish(p, now) && (best == nil || p.Due.Before(best.Due)) {
				best = p
			}
		}
	}
	if best == nil {
		return nil, nil
	}
	best.State, best.LeaseUntil = PublishPlanning, leaseUntil
	return copyPublish(best), nil
}

func claimablePublish(p *Publish, now time.Time) bool {
	switch p.State {
	case PublishScheduled, PublishAccepted:
		return !p.Due.After(now)
	case PublishPlanning:
		return p.LeaseUntil.Before(now)
	}
	return false
}

// PlanPublish implements Store.
func (m *Memory) PlanPublish(_ context.Context, p *Publish, ds []*Delivery, done bool) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.app(p.AppID)
	cur, ok := a.publishes[p.ID]
	if !ok {
		return 0, ErrNotFound
	}
	set := a.deliveries[p.ID]
	if set == nil {
		set = &sortedMap[*Delivery]{}
		a.deliveries[p.ID] = set
	}
	added := 0
	for _, d := range ds {
		if _, dup := set.get(d.DeviceID); dup {
			continue
		}
		c := copyDelivery(d)
		set.put(d.DeviceID, c)
		m.pushPending(c)
		added++
	}
	cur.Counters.Planned += added
	cur.Cursor, cur.LeaseUntil = p.Cursor, p.LeaseUntil
	if done {
		cur.State = PublishDispatching
		if p.State == PublishExpired || p.State == PublishFailed {
			cur.State, cur.Error = p.State, p.Error
		}
		cur.settle()
	}
	p.Counters, p.State = cur.Counters, cur.State
	return added, nil
}

func (m *Memory) pushPending(d *Delivery) {
	m.seq++
	heap.Push(&m.pending, dueEntry{d: d, due: d.Due, seq: m.seq})
}

// ClaimDeliveries implements Store.
func (m *Memory) ClaimDeliveries(_ context.Context, now, leaseUntil time.Time, limit int) ([]*Delivery, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for d := range m.leased { // lapsed leases (a crashed worker) become due again
		if d.LeaseUntil.Before(now) {
			delete(m.leased, d)
			d.LeaseUntil = time.Time{}
			m.pushPending(d)
		}
	}
	var out []*Delivery
	for len(out) < limit && m.pending.Len() > 0 && !m.pending[0].due.After(now) {
		e := heap.Pop(&m.pending).(dueEntry)
		d := e.d
		if d.State != DeliveryPending || !d.Due.Equal(e.due) || !d.LeaseUntil.IsZero() {
			continue // stale entry
		}
		d.LeaseUntil = leaseUntil
		m.leased[d] = struct{}{}
		out = append(out, copyDelivery(d))
	}
	return out, nil
}

// FinishDeliveries implements Store.
func (m *Memory) FinishDeliveries(_ context.Context, ds []*Delivery) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range ds {
		a := m.app(r.AppID)
		set := a.deliveries[r.PublishID]
		if set == nil {
			continue
		}
		d, ok := set.get(r.DeviceID)
		if !ok || d.State != DeliveryPending {
			continue
		}
		delete(m.leased, d)
		retried := r.Attempts > d.Attempts
		*d = *copyDelivery(r)
		d.LeaseUntil = time.Time{}
		p := a.publishes[r.PublishID]
		switch d.State {
		case DeliveryPending:
			m.pushPending(d)
			if p != nil && retried {
				p.Counters.Retries++
			}
		case DeliveryDelivered:
			if p != nil {
				p.Counters.Succeeded++
			}
		case DeliveryFailed:
			if p != nil {
				p.Counters.Failed++
				if d.TokenRemoved {
					p.Counters.Removed++
				}
			}
		case DeliveryExpired:
			if p != nil {
				p.Counters.Expired++
			}
		}
		if p != nil {
			p.settle()
		}
	}
	return nil
}

// ListDeliveries implements Store.
func (m *Memory) ListDeliveries(_ context.Context, appID, publishID, after string, limit int) ([]*Delivery, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	set := m.app(appID).deliveries[publishID]
	if set == nil {
		return nil, nil
	}
	keys := set.page(after, limit)
	out := make([]*Delivery, 0, len(keys))
	for _, k := range keys {
		d, _ := set.get(k)
		out = append(out, copyDelivery(d))
	}
	return out, nil
}

// NextDue implements Store.
func (m *Memory) NextDue(_ context.Context) (time.Time, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var t time.Time
	ok := false
	take := func(c time.Time) {
		if !ok || c.Before(t) {
			t, ok = c, true
		}
	}
	for m.pending.Len() > 0 {
		e := m.pending[0]
		if e.d.State == DeliveryPending && e.d.Due.Equal(e.due) && e.d.LeaseUntil.IsZero() {
			take(e.due)
			break
		}
		heap.Pop(&m.pending)
	}
	for d := range m.leased {
		take(d.LeaseUntil)
	}
	for _, a := range m.apps {
		for _, p := range a.publishes {
			switch p.State {
			case PublishScheduled, PublishAccepted:
				take(p.Due)
			case PublishPlanning:
				take(p.LeaseUntil)
			}
		}
	}
	return t, ok, nil
}

// PruneFinished implements Store.
func (m *Memory) PruneFinished(_ context.Context, before time.Time, limit int) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, a := range m.apps {
		for id, p := range a.publishes {
			if n >= limit {
				return n, nil
			}
			if p.terminal() && p.CreatedAt.Before(before) {
				delete(a.publishes, id)
				delete(a.deliveries, id)
				delete(a.events, id)
				n++
			}
		}
	}
	return n, nil
}

// AddDeliveryEvent implements Store.
func (m *Memory) AddDeliveryEvent(_ context.Context, e *DeliveryEvent) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.app(e.AppID)
	for _, old := range a.events[e.PublishID] {
		if old.EventID == e.EventID {
			return nil
		}
	}
	c := *e
	a.events[e.PublishID] = append(a.events[e.PublishID], &c)
	return nil
}

// ListDeliveryEvents implements Store.
func (m *Memory) ListDeliveryEvents(_ context.Context, appID, publishID string, limit int) ([]*DeliveryEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	evs := m.app(appID).events[publishID]
	out := make([]*DeliveryEvent, 0, min(limit, len(evs)))
	for _, e := range evs[:min(limit, len(evs))] {
		c := *e
		out = append(out, &c)
	}
	return out, nil
}

// dueHeap orders pending deliveries by due time, then insertion.
type dueEntry struct {
	d   *Delivery
	due time.Time
	seq uint64
}

type dueHeap []dueEntry

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h dueHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)   { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	n := len(old)
	e := old[n-1]
	old[n-1] = dueEntry{}
	*h = old[:n-1]
	return e
}
