package webhook

import (
	"cmp"
	"slices"
	"time"
)

// stateKey names a channel (user empty) or a member of a presence channel.
type stateKey struct {
	app, channel, user string
}

// pendingKey names one delayed event: channel_vacated or member_removed of a stateKey.
type pendingKey struct {
	typ string
	stateKey
}

// delayed is a channel_vacated or member_removed waiting for its re-check.
type delayed struct {
	app   *appHooks
	seq   uint64
	timer *time.Timer
}

// schedule arms the re-check of a delayed event; one per key is pending at most (a second
// vacate of the same channel is answered by the same re-check). Over QueueSize pending
// re-checks, the event is re-checked at once instead, so timers stay bounded.
func (s *Sender) schedule(a *appHooks, typ string, k stateKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stateClosed {
		s.dropClosed(a, typ, k.channel)
		return
	}
	pk := pendingKey{typ: typ, stateKey: k}
	if _, ok := s.pending[pk]; ok {
		return
	}
	if s.delay <= 0 || len(s.pending) >= s.queue {
		s.resolve(a, pk)
		return
	}
	s.seq++
	d := &delayed{app: a, seq: s.seq}
	s.timers.Add(1)
	// fire needs s.mu, held here until d is registered.
	d.timer = time.AfterFunc(s.delay, func() { s.fire(pk, d) })
	s.pending[pk] = d
}

// fire runs the re-check of d when its delay is over, unless it was cancelled meanwhile.
func (s *Sender) fire(pk pendingKey, d *delayed) {
	defer s.timers.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[pk] != d {
		return
	}
	delete(s.pending, pk)
	s.resolve(d.app, pk)
}

// cancelPending forgets the delayed event of this kind and key, if any: the channel was
// occupied again (or the user came back) within the delay. Callers hold s.mu.
func (s *Sender) cancelPending(typ string, k stateKey) {
	pk := pendingKey{typ: typ, stateKey: k}
	d, ok := s.pending[pk]
	if !ok {
		return
	}
	delete(s.pending, pk)
	if d.timer.Stop() {
		s.timers.Done()
	}
	// Otherwise fire is already waiting for s.mu; it will find d gone and do nothing.
}

// resolve re-checks a delayed event and queues it if the channel is still unoccupied (the
// user still absent), forgetting the reported state. If the check finds it occupied
// (present) again, the reported state stays, so the channel_occupied (member_added) of
// that re-subscription is not sent twice. Callers hold s.mu; the Checker must not call
// back into the sender.
func (s *Sender) resolve(a *appHooks, pk pendingKey) {
	var c Checker
	if p := s.checker.Load(); p != nil {
		c = *p
	}
	k := pk.stateKey
	switch pk.typ {
	case typeVacated:
		if c != nil && c.Occupied(k.app, k.channel) {
			return
		}
		delete(s.occupied, k)
		s.push(a, typeVacated, k.channel, func() []byte { return encodeChannel(typeVacated, k.channel) })
	case typeMemberRemoved:
		if c != nil && c.HasMember(k.app, k.channel, k.user) {
			return
		}
		delete(s.present, k)
		s.push(a, typeMemberRemoved, k.channel, func() []byte { return encodeMember(typeMemberRemoved, k.channel, k.user) })
	}
}

// flushDelayed stops intake of stateful events and re-checks every pending delayed event
// now, in the order they were scheduled; it returns when no timer callback is running.
func (s *Sender) flushDelayed() {
	s.mu.Lock()
	s.stateClosed = true
	type item struct {
		pk pendingKey
		d  *delayed
	}
	items := make([]item, 0, len(s.pending))
	for pk, d := range s.pending {
		items = append(items, item{pk, d})
		delete(s.pending, pk)
		if d.timer.Stop() {
			s.timers.Done()
		}
	}
	slices.SortFunc(items, func(x, y item) int { return cmp.Compare(x.d.seq, y.d.seq) })
	for _, it := range items {
		s.resolve(it.d.app, it.pk)
	}
	s.mu.Unlock()
	s.timers.Wait()
}
