package server

import (
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/internal/testkit"
)

// TestResumePacer: the server-wide resume pace lets resumePaceBurst channels go at once,
// then makes each further one wait its share of the rate on the server's clock, in the
// order they asked across connections; a waiting connection gives its history slot back
// for the wait, and one that closes meanwhile stops waiting (false).
func TestResumePacer(t *testing.T) {
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	srv := &Server{opts: Options{Now: clk.Now, ServerResumeChannelsPerSecond: 100,
		AfterFunc: func(d time.Duration, f func()) channels.Timer { return clk.AfterFunc(d, f) }},
		historySlots: make(chan struct{}, 1)}
	a := &conn{srv: srv, done: make(chan struct{})}
	b := &conn{srv: srv, done: make(chan struct{})}
	for i := range resumePaceBurst {
		if !a.paceResume(1) || clk.Pending() != 0 {
			t.Fatalf("channel %d of the burst waited", i+1)
		}
	}
	// a's next channel is due in 10 ms (100/s); it waits without its history slot.
	aDone := make(chan bool)
	go a.withHistorySlot(func() { aDone <- a.paceResume(1) })
	waitFor(t, "a waiting", func() bool { return clk.Pending() == 1 })
	if n := len(srv.historySlots); n != 0 {
		t.Fatalf("%d history slots taken while a waits for the pace", n)
	}
	// b asks next: it is due 10 ms after a.
	bDone := make(chan bool)
	go func() { bDone <- b.paceResume(1) }()
	waitFor(t, "b waiting", func() bool { return clk.Pending() == 2 })
	clk.Add(10 * time.Millisecond)
	if !<-aDone {
		t.Fatal("a's wait ended false")
	}
	if clk.Pending() != 1 {
		t.Fatalf("b stopped waiting with a (pending %d)", clk.Pending())
	}
	close(b.done) // b's connection closes: its wait ends, false
	if <-bDone {
		t.Fatal("b's wait ended true after its connection closed")
	}
}

// TestResumePacerUnpaced: a negative rate never waits.
func TestResumePacerUnpaced(t *testing.T) {
	srv := &Server{opts: Options{Now: time.Now, ServerResumeChannelsPerSecond: -1}}
	c := &conn{srv: srv, done: make(chan struct{})}
	for range 10 * resumePaceBurst {
		if !c.paceResume(1) {
			t.Fatal("unpaced resume stopped")
		}
	}
}

// TestOptionsSizedByCPUs: the paces and history slots follow Options.CPUs, not GOMAXPROCS,
// which cmd/pushwire raises above the CPUs for the garbage collector (min_procs).
func TestOptionsSizedByCPUs(t *testing.T) {
	for _, cpus := range []int{1, 2, 4} {
		o := Options{CPUs: cpus}
		o.applyDefaults()
		if got, want := o.ServerResumeChannelsPerSecond, DefaultServerResumeChannelsPerCPU*cpus; got != want {
			t.Errorf("CPUs %d: resume pace %d, want %d", cpus, got, want)
		}
		if got, want := o.ServerHistoryReadsPerSecond, DefaultServerHistoryReadsPerCPU*cpus; got != want {
			t.Errorf("CPUs %d: history reads %d, want %d", cpus, got, want)
		}
	}
}
