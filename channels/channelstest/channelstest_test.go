package channelstest_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/channels/channelstest"
	"github.com/pushwire/pushwire/protocol"
)

var _ channels.Subscriber = (*channelstest.Sub)(nil)

func TestSubRecordsAndWaits(t *testing.T) {
	s := channelstest.New("1.2")
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() { s.Send([]byte{'a' + byte(i)}) })
	}
	got := s.WaitFrames(t, 4, 5*time.Second)
	wg.Wait()
	slices.Sort(got)
	if want := []string{"a", "b", "c", "d"}; !slices.Equal(got, want) {
		t.Fatalf("frames = %q, want %q", got, want)
	}
	if s.SocketID() != "1.2" || s.Version() != protocol.V1 {
		t.Fatalf("identity = %s v%d", s.SocketID(), s.Version())
	}
	if taken := s.Take(); len(taken) != 4 || s.Len() != 0 {
		t.Fatalf("Take = %q, Len after = %d", taken, s.Len())
	}
}

func TestSubLimitClosesWith4100(t *testing.T) {
	var onClose []*protocol.Error
	s := &channelstest.Sub{ID: "1.2", Limit: 2, OnClose: func(err *protocol.Error) { onClose = append(onClose, err) }}
	for range 5 {
		s.Send([]byte("x"))
	}
	if s.Len() != 2 || s.Dropped() != 3 {
		t.Fatalf("Len = %d, Dropped = %d, want 2 and 3", s.Len(), s.Dropped())
	}
	if err := s.Closed(); err == nil || err.Code != protocol.CodeOverCapacity {
		t.Fatalf("Closed = %v, want 4100", err)
	}
	if len(s.Closes()) != 1 || len(onClose) != 1 {
		t.Fatalf("Closes = %v, OnClose calls = %d, want 1 each", s.Closes(), len(onClose))
	}
}

func TestWaitClosedAndJournal(t *testing.T) {
	j := &channelstest.Journal{}
	a := &channelstest.Sub{ID: "1.1", Journal: j}
	b := &channelstest.Sub{ID: "2.2", Journal: j, V: protocol.V2}
	a.Send([]byte("one"))
	b.Send([]byte("two"))
	a.Send([]byte("three"))
	if got, want := j.Entries(), []string{"1.1 one", "2.2 two", "1.1 three"}; !slices.Equal(got, want) {
		t.Fatalf("journal = %q, want %q", got, want)
	}
	go b.Close(&protocol.Error{Code: 4009, Message: "bye"})
	if err := b.WaitClosed(t, 5*time.Second); err.Code != 4009 {
		t.Fatalf("closed with %v", err)
	}
	b.Send([]byte("late"))
	if b.Len() != 1 || b.Dropped() != 1 {
		t.Fatalf("after close: Len = %d, Dropped = %d", b.Len(), b.Dropped())
	}
}
