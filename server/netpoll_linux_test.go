//go:build linux

package server

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestNetpollerOneShotAndRearm(t *testing.T) {
	p, err := newNetpoller()
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	got := make(chan string, 4)
	if err := p.add(fds[0], func() {
		buf := make([]byte, 16)
		n, _ := unix.Read(fds[0], buf)
		got <- string(buf[:n])
	}); err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"one", "two"} {
		if _, err := unix.Write(fds[1], []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if s := <-got; s != msg {
			t.Fatalf("read %q, want %q", s, msg)
		}
		if err := p.rearm(fds[0]); err != nil {
			t.Fatal(err)
		}
	}
	p.remove(fds[0])
}
