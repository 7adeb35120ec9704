package testkit

import (
	"sort"
	"sync"
	"time"
)

// Clock is a settable clock for tests: pass its Now where code takes a clock, move it with Add.
// Its AfterFunc schedules calls on it, which Add makes when the clock passes their time.
type Clock struct {
	mu     sync.Mutex
	t      time.Time
	timers []*ClockTimer
}

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d (backwards when d is negative), then calls, in the caller's
// goroutine and in time order, every AfterFunc whose time has come.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	now := c.t
	var due []*ClockTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(now) {
			due = append(due, t)
		} else {
			keep = append(keep, t)
		}
	}
	clear(c.timers[len(keep):])
	c.timers = keep
	for _, t := range due {
		t.fired = true
	}
	c.mu.Unlock()
	sort.SliceStable(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

// AfterFunc calls f once the clock has moved d past now (from Add). Its signature matches
// time.AfterFunc's; the timer's Stop cancels the call.
func (c *Clock) AfterFunc(d time.Duration, f func()) *ClockTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &ClockTimer{c: c, at: c.t.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

// Pending reports how many AfterFunc calls are still to come.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// ClockTimer is a call scheduled by Clock.AfterFunc.
type ClockTimer struct {
	c     *Clock
	at    time.Time
	f     func()
	fired bool
}

// Stop cancels the call; it reports whether the call was still to come.
func (t *ClockTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.fired {
		return false
	}
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}
