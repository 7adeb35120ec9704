//go:build linux

package server

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// netpoller is the readiness notifier of the epoll transport (pollWire): one
// epoll instance and one goroutine waiting on it. Each registered fd is armed
// EPOLLONESHOT, so its callback runs at most once per readiness event (in a
// goroutine of its own); the callback re-arms the fd with rearm once it has read
// what was available. No goroutine exists per idle connection.
//
// Failures are never silent. A failed EPOLL_CTL_ADD or _MOD is returned to the
// connection, which closes with a logged reason (pollWire.start, pollWire.event). A
// failed epoll_wait other than EINTR is reported to hooks.waitErr (the server logs
// and counts it) and retried after a backoff that doubles from sys.backoff up to
// pollBackoffMax; after pollMaxFailures failures in a row the poller gives up: the
// loop ends and hooks.fatal gets the error (the server then reports it on
// Server.Failed, and cmd/pushwire shuts down with it, so a supervisor restarts the
// process rather than leaving sockets nobody reads). Retrying first rides out a
// transient failure (ENOMEM); a wait that keeps failing (EBADF, EINVAL: a broken
// epoll instance) cannot heal, and failing loudly is then the honest answer.
type netpoller struct {
	epfd  int
	sys   epollSys
	hooks pollHooks
	done  chan struct{} // closed by close: ends the loop and its backoff

	mu       sync.Mutex
	handlers map[int32]func()
	closed   bool
}

// epollSys is the netpoller's seam to the kernel: tests put failing calls in it. A nil
// function is the real system call.
type epollSys struct {
	wait func(epfd int, events []unix.EpollEvent, msec int) (int, error)
	ctl  func(epfd, op, fd int, event *unix.EpollEvent) error
	// backoff is the first retry delay after a failed wait (default pollBackoffMin).
	backoff time.Duration
}

// Retry pacing of a failing epoll_wait (see netpoller).
const (
	pollBackoffMin  = 10 * time.Millisecond
	pollBackoffMax  = time.Second
	pollMaxFailures = 10 // about 5 s of failures in a row with the default backoff
)

const pollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

func newNetpoller() (*netpoller, error) { return newNetpollerWith(nil, pollHooks{}) }

// newNetpollerWith makes a netpoller on sys (nil: the kernel) whose goroutines start
// through hooks.spawn.
func newNetpollerWith(sys *epollSys, hooks pollHooks) (*netpoller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &netpoller{epfd: fd, hooks: hooks.withDefaults(), done: make(chan struct{}), handlers: map[int32]func(){}}
	if sys != nil {
		p.sys = *sys
	}
	if p.sys.wait == nil {
		p.sys.wait = unix.EpollWait
	}
	if p.sys.ctl == nil {
		p.sys.ctl = unix.EpollCtl
	}
	if p.sys.backoff <= 0 {
		p.sys.backoff = pollBackoffMin
	}
	p.hooks.spawn(p.loop)
	return p, nil
}

// add registers fd; onReadable runs in its own short-lived goroutine each time
// the fd becomes readable (or hung up) after being armed.
func (p *netpoller) add(fd int, onReadable func()) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("netpoller closed")
	}
	p.handlers[int32(fd)] = onReadable
	ev := unix.EpollEvent{Events: pollEvents, Fd: int32(fd)}
	if err := p.sys.ctl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		delete(p.handlers, int32(fd))
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	return nil
}

// rearm asks for the next readiness event of fd.
func (p *netpoller) rearm(fd int) error {
	ev := unix.EpollEvent{Events: pollEvents, Fd: int32(fd)}
	if err := p.sys.ctl(p.epfd, unix.EPOLL_CTL_MOD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl mod: %w", err)
	}
	return nil
}

// remove unregisters fd; call it before closing the fd.
func (p *netpoller) remove(fd int) {
	p.mu.Lock()
	delete(p.handlers, int32(fd))
	p.mu.Unlock()
	_ = p.sys.ctl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// close stops the loop after its current wait (at most 100 ms) or backoff; the owner of
// hooks.spawn joins it.
func (p *netpoller) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.done)
	}
}

func (p *netpoller) loop() {
	events := make([]unix.EpollEvent, 256)
	var fns []func()
	failures := 0
	for {
		n, err := p.sys.wait(p.epfd, events, 100)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = unix.Close(p.epfd)
			return
		}
		fns = fns[:0]
		for i := 0; i < n; i++ {
			if fn := p.handlers[events[i].Fd]; fn != nil {
				fns = append(fns, fn)
			}
		}
		p.mu.Unlock()
		for _, fn := range fns {
			p.hooks.spawn(fn)
		}
		clear(fns)
		if err == nil || errors.Is(err, unix.EINTR) {
			failures = 0
			continue
		}
		failures++
		err = fmt.Errorf("epoll_wait: %w", err)
		p.hooks.waitErr(err, failures)
		if failures >= pollMaxFailures {
			// The epoll fd stays open (a re-arm keeps succeeding, no event comes) until the
			// owner, told by fatal, shuts down.
			p.hooks.fatal(fmt.Errorf("netpoller: %d failures in a row, giving up: %w", failures, err))
			return
		}
		backoff := min(p.sys.backoff<<(failures-1), pollBackoffMax)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-p.done:
			t.Stop()
			_ = unix.Close(p.epfd)
			return
		}
	}
}

// unreadBytes is how many bytes the socket fd has received and nobody has read yet (0 on
// error).
func unreadBytes(fd int) int {
	n, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	if err != nil {
		return 0
	}
	return n
}
