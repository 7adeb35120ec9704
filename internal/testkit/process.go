package testkit

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a TCP port free on 127.0.0.1 right now.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePorts(t, 1)[0]
}

// FreePorts returns n distinct TCP ports free on 127.0.0.1 right now. The listeners are held
// until all n are chosen: ports asked for one after the other can be the same one, which the
// kernel hands out again as soon as it is released.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// Process is a helper server (redis-server, nats-server) a test started, to kill, freeze or
// restart it.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// StartProcess runs name with args, waits until addr accepts TCP connections (failing the
// test if the process exits first) and kills the process when the test ends.
func StartProcess(t testing.TB, addr, name string, args ...string) *Process {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("testkit: %s not installed: %v", name, err)
	}
	p := &Process{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("testkit: start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.Kill(t) })
	WaitFor(t, 10*time.Second, fmt.Sprintf("%s listening on %s", name, addr), func() bool {
		select {
		case <-p.done:
			t.Fatalf("testkit: %s exited at start", name)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return p
}

// StartRedisServer starts a throwaway redis-server (no persistence) on port.
func StartRedisServer(t testing.TB, port int) *Process {
	p := strconv.Itoa(port)
	return StartProcess(t, "127.0.0.1:"+p, "redis-server", "--port", p, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
}

// StartNATSServer starts a throwaway nats-server on port, with extra arguments.
func StartNATSServer(t testing.TB, port int, extra ...string) *Process {
	p := strconv.Itoa(port)
	return StartProcess(t, "127.0.0.1:"+p, "nats-server", append([]string{"-a", "127.0.0.1", "-p", p}, extra...)...)
}

// Kill stops the process at once (SIGKILL, resuming it first if it is stopped) and waits
// for it to exit.
func (p *Process) Kill(t testing.TB) {
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("testkit: pid %d did not exit", p.cmd.Process.Pid)
	}
}

// Signal sends sig; a process stopped with SIGSTOP is resumed before the test ends.
func (p *Process) Signal(t testing.TB, sig syscall.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("testkit: signal %v: %v", sig, err)
	}
	if sig == syscall.SIGSTOP {
		t.Cleanup(func() { _ = p.cmd.Process.Signal(syscall.SIGCONT) })
	}
}
