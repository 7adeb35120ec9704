package server

import (
	"sync"
	"time"
)

// DefaultServerResumeChannelsPerCPU is the server-wide pace of resume work per CPU
// (Options.ServerResumeChannelsPerSecond's default is this times Options.CPUs). Resuming one
// channel (its turn, state read, a short replay and the answer frames) costs some tens of
// microseconds of CPU, so resumes take at most about a twentieth of the CPUs however many
// connections ask: 100 connections resuming 1,000 channels each wait in line (a 1,000-channel
// resume alone takes a second) instead of stalling the fan-out of every other channel.
const DefaultServerResumeChannelsPerCPU = 1000

// resumePaceBurst is how many channels of resume work may run back to back before the pace
// applies: about a millisecond of CPU.
const resumePaceBurst = 16

// pacer spreads work at a rate shared by every connection: each unit is due 1/rate after
// the one before (a virtual schedule, as in GCRA), and a unit may start up to
// resumePaceBurst units ahead of the schedule. Work reserved while others wait queues
// behind theirs, so connections take turns in the order they asked.
type pacer struct {
	mu  sync.Mutex
	tat time.Time // when the work reserved so far is paid for
}

// reserve books n units at now for a rate of perSecond and returns how long the caller
// must wait before starting them (zero or less: at once).
func (p *pacer) reserve(now time.Time, n, perSecond int) time.Duration {
	per := time.Second / time.Duration(perSecond)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tat.Before(now) {
		p.tat = now
	}
	wait := p.tat.Sub(now) - (resumePaceBurst-1)*per
	p.tat = p.tat.Add(time.Duration(n) * per)
	return wait
}

// paceResume is the connection's channels.ConnOptions.Pace: it waits until the server-wide
// resume pace allows n more channels, and reports false when the connection closed
// meanwhile. It runs on the connection's read side, so while it waits the socket is not read;
// it gives back the history slot it is called in (withHistorySlot) for the wait.
func (c *conn) paceResume(n int) bool {
	o := &c.srv.opts
	if o.ServerResumeChannelsPerSecond < 0 {
		return true
	}
	d := c.srv.resumePace.reserve(o.Now(), n, o.ServerResumeChannelsPerSecond)
	if d <= 0 {
		return true
	}
	if c.inHistorySlot {
		// Waiting costs no CPU: let other history reads (another connection's
		// channel_history, an honest resume's turn) run meanwhile.
		<-c.srv.historySlots
		defer func() { c.srv.historySlots <- struct{}{} }()
	}
	ready := make(chan struct{})
	t := o.AfterFunc(d, func() { close(ready) })
	select {
	case <-ready:
		return true
	case <-c.done:
		t.Stop()
		return false
	}
}
