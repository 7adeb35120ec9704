//go:build linux

package server

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"

	"github.com/pushwire/pushwire/server/wsframe"
)

// failingCtl is an epoll_ctl that fails op with errno and passes every other call on.
func failingCtl(op int, errno unix.Errno) func(epfd, op, fd int, ev *unix.EpollEvent) error {
	return func(epfd, o, fd int, ev *unix.EpollEvent) error {
		if o == op {
			return errno
		}
		return unix.EpollCtl(epfd, o, fd, ev)
	}
}

// TestPollCtlFailureClosesConnection: when the netpoller cannot re-arm (EPOLL_CTL_MOD) or
// register (EPOLL_CTL_ADD) a socket, which would then never be read again, the connection
// is not left hanging: the client gets 4200 (reconnect) and a close frame, the reason is
// logged at error level and the disconnect is counted with the reason poll_failed.
func TestPollCtlFailureClosesConnection(t *testing.T) {
	for _, tc := range []struct {
		name  string
		op    int
		first string // what the client sends once connected
		pong  bool
	}{
		{"rearm", unix.EPOLL_CTL_MOD, `{"event":"pusher:ping"}`, true},
		{"add", unix.EPOLL_CTL_ADD, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.ErrorLevel)
			_, fm, url := newPollServer(t, Options{Logger: zap.New(core), pollSys: &epollSys{ctl: failingCtl(tc.op, unix.EINVAL)}})
			c := dialRaw(t, url, "/app/app-key", nil)
			c.expectPrefix(`{"event":"pusher:connection_established"`)
			if tc.first != "" {
				c.write(text(tc.first))
			}
			if tc.pong {
				c.expect(wsframe.OpText, `{"event":"pusher:pong"}`)
			}
			c.expect(wsframe.OpText, `{"event":"pusher:error","data":{"code":4200,"message":"Internal server error"}}`)
			c.expectClose(4200)
			fm.waitCount(t, "disconnected app-id 4200 poll_failed", 1)
			entries := logs.FilterField(zap.String("reason", "poll_failed")).All()
			if len(entries) != 1 || entries[0].ContextMap()["error"] == nil {
				t.Fatalf("want one error log with reason poll_failed and the error, got %v", logs.All())
			}
		})
	}
}

// scriptedWait is an epoll_wait that returns the scripted errors first, then the real call;
// with forever it fails with the last one every time.
type scriptedWait struct {
	mu      sync.Mutex
	errs    []error
	forever bool
}

func (s *scriptedWait) wait(epfd int, events []unix.EpollEvent, msec int) (int, error) {
	s.mu.Lock()
	if len(s.errs) > 0 {
		err := s.errs[0]
		if !s.forever || len(s.errs) > 1 {
			s.errs = s.errs[1:]
		}
		s.mu.Unlock()
		return -1, err
	}
	s.mu.Unlock()
	return unix.EpollWait(epfd, events, msec)
}

// TestPollWaitErrorsRecover: failed epoll_waits are counted (EINTR is not a failure) and
// retried; the transport then serves as before.
func TestPollWaitErrorsRecover(t *testing.T) {
	sw := &scriptedWait{errs: []error{unix.EINTR, unix.EBADF, unix.ENOMEM, unix.EBADF}}
	core, logs := observer.New(zap.ErrorLevel)
	srv, fm, url := newPollServer(t, Options{Logger: zap.New(core), pollSys: &epollSys{wait: sw.wait, backoff: time.Millisecond}})
	c := dialRaw(t, url, "/app/app-key", nil)
	c.expectPrefix(`{"event":"pusher:connection_established"`)
	c.write(text(`{"event":"pusher:ping"}`)) // read once the poller is past the failures
	c.expect(wsframe.OpText, `{"event":"pusher:pong"}`)
	if got := fm.count("poll_error"); got != 3 {
		t.Fatalf("%d poll errors counted, want 3", got)
	}
	if got := logs.FilterMessageSnippet("retrying").Len(); got != 3 {
		t.Fatalf("%d poll errors logged, want 3: %v", got, logs.All())
	}
	select {
	case err := <-srv.Failed():
		t.Fatalf("Failed: %v", err)
	default:
	}
}

// TestPollWaitFailureFailsLoudly: an epoll_wait that keeps failing is logged and counted
// pollMaxFailures times, then the server reports it on Failed (cmd/pushwire shuts down
// with it); Shutdown still joins everything.
func TestPollWaitFailureFailsLoudly(t *testing.T) {
	sw := &scriptedWait{errs: []error{unix.EBADF}, forever: true}
	srv, fm, _ := newPollServer(t, Options{pollSys: &epollSys{wait: sw.wait, backoff: time.Millisecond}})
	select {
	case err := <-srv.Failed():
		if !errors.Is(err, unix.EBADF) {
			t.Fatalf("Failed: %v, want EBADF", err)
		}
	case <-time.After(30 * time.Second): // a bound on an event, not a timing assertion
		t.Fatal("no failure reported")
	}
	if got := fm.count("poll_error"); got != pollMaxFailures {
		t.Fatalf("%d poll errors counted, want %d", got, pollMaxFailures)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if left := serverGoroutines(); len(left) > 0 {
		t.Fatalf("goroutines left: %v", left)
	}
}
