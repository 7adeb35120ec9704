//go:build linux

package server

import (
	"errors"
	"sync"

	"golang.org/x/sys/unix"
)

// netpoller is the readiness notifier of the epoll transport (pollWire): one
// epoll instance and one goroutine waiting on it. Each registered fd is armed
// EPOLLONESHOT, so its callback runs at most once per readiness event (in a
// goroutine of its own); the callback re-arms the fd with rearm once it has read
// what was available. No goroutine exists per idle connection.
type netpoller struct {
	epfd int

	mu       sync.Mutex
	handlers map[int32]func()
	closed   bool
}

const pollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

func newNetpoller() (*netpoller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &netpoller{epfd: fd, handlers: map[int32]func(){}}
	go p.loop()
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
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		delete(p.handlers, int32(fd))
		return err
	}
	return nil
}

// rearm asks for the next readiness event of fd.
func (p *netpoller) rearm(fd int) error {
	ev := unix.EpollEvent{Events: pollEvents, Fd: int32(fd)}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
}

// remove unregisters fd; call it before closing the fd.
func (p *netpoller) remove(fd int) {
	p.mu.Lock()
	delete(p.handlers, int32(fd))
	p.mu.Unlock()
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// close stops the loop after its current wait (at most 100 ms).
func (p *netpoller) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}

func (p *netpoller) loop() {
	events := make([]unix.EpollEvent, 256)
	var fns []func()
	for {
		n, err := unix.EpollWait(p.epfd, events, 100)
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
			go fn()
		}
		clear(fns)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
	}
}
