// Package channelstest provides an in-memory fake of channels.Subscriber for tests: it
// records every frame the hub sends it and every Close, is safe for concurrent use, and can
// wait for frames without sleeping.
//
// It imports only protocol, so tests inside package channels can use it too.
package channelstest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/protocol"
)

// Sub is a fake subscriber. Set the exported fields before handing it to a hub; after that
// only its methods may be used, from any goroutine.
type Sub struct {
	// ID is the socket id it reports. New fills in a valid one.
	ID string
	// V is the wire dialect it reports (V1 unless set).
	V protocol.Version
	// W is its wire format (JSON unless set; pass it in channels.ConnOptions.Wire too): Send
	// transcodes JSON frames into it as the server does, SendEncoded records frames as given.
	W protocol.Wire
	// Limit, when positive, behaves like the server's bounded write queue: once Limit frames
	// are held, the next Send drops its frame and closes the fake with 4100.
	Limit int
	// Journal, when set, also records every frame this fake receives, in one order shared
	// with the other fakes using the same Journal.
	Journal *Journal
	// OnClose, when set, runs once, synchronously, on the first Close (for example to start
	// the connection's Disconnect on another goroutine, as the server does). It must not
	// block.
	OnClose func(err *protocol.Error)

	mu      sync.Mutex
	frames  [][]byte
	closes  []*protocol.Error
	dropped int
	changed chan struct{} // closed and replaced on every change
}

// New returns a V1 fake with this socket id (use a valid one, such as "123.456").
func New(socketID string) *Sub { return &Sub{ID: socketID, V: protocol.V1} }

// NewV2 returns a fake that negotiated protocol V2.
func NewV2(socketID string) *Sub { return &Sub{ID: socketID, V: protocol.V2} }

// SocketID implements channels.Subscriber.
func (s *Sub) SocketID() string { return s.ID }

// Version implements channels.Subscriber. A zero V reports V1.
func (s *Sub) Version() protocol.Version {
	if s.V == 0 {
		return protocol.V1
	}
	return s.V
}

// Send implements channels.Subscriber: a JSON frame, transcoded into W when W is binary.
func (s *Sub) Send(frame []byte) {
	if s.W.Binary() {
		frame = protocol.MustEncode(s.W.Form(), frame)
	}
	s.SendEncoded(frame)
}

// SendEncoded implements channels.Subscriber. It keeps the slice it is given (no copy), so
// tests can check that subscribers share one encoding. After Close, frames are dropped as
// the server drops them.
func (s *Sub) SendEncoded(frame []byte) {
	s.mu.Lock()
	if len(s.closes) > 0 {
		s.dropped++
		s.mu.Unlock()
		return
	}
	if s.Limit > 0 && len(s.frames) >= s.Limit {
		s.dropped++
		s.mu.Unlock()
		s.Close(&protocol.Error{Code: protocol.CodeOverCapacity, Message: "Client is too slow: write queue full"})
		return
	}
	s.frames = append(s.frames, frame)
	if s.Journal != nil {
		s.Journal.add(s.ID, frame)
	}
	s.notifyLocked()
	s.mu.Unlock()
}

// Close implements channels.Subscriber. Every call is recorded; OnClose runs on the first.
func (s *Sub) Close(err *protocol.Error) {
	s.mu.Lock()
	first := len(s.closes) == 0
	s.closes = append(s.closes, err)
	s.notifyLocked()
	s.mu.Unlock()
	if first && s.OnClose != nil {
		s.OnClose(err)
	}
}

func (s *Sub) notifyLocked() {
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

// waitLocked returns a channel closed at the next change. Callers hold s.mu.
func (s *Sub) waitLocked() <-chan struct{} {
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}

// Frames returns copies of the frames received so far, as strings, in order.
func (s *Sub) Frames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.frames))
	for i, f := range s.frames {
		out[i] = string(f)
	}
	return out
}

// RawFrames returns the very slices the hub sent (not copies). Do not modify them.
func (s *Sub) RawFrames() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.frames...)
}

// Len returns how many frames were received.
func (s *Sub) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames)
}

// Take returns the frames received so far, as strings, and forgets them.
func (s *Sub) Take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.frames))
	for i, f := range s.frames {
		out[i] = string(f)
	}
	s.frames = nil
	return out
}

// Closes returns every error Close was called with, in order.
func (s *Sub) Closes() []*protocol.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*protocol.Error(nil), s.closes...)
}

// Closed returns the error of the first Close, or nil when Close was never called.
func (s *Sub) Closed() *protocol.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.closes) == 0 {
		return nil
	}
	return s.closes[0]
}

// Dropped returns how many frames were dropped because the fake was closed or full.
func (s *Sub) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// WaitFrames waits until at least n frames were received and returns them (as Frames
// does); it fails the test after timeout. Call it from the test goroutine.
func (s *Sub) WaitFrames(t testing.TB, n int, timeout time.Duration) []string {
	t.Helper()
	if !s.waitFor(func() bool { return len(s.frames) >= n }, timeout) {
		t.Fatalf("channelstest: socket %s: got %d frames within %v, want at least %d: %q", s.ID, s.Len(), timeout, n, s.Frames())
	}
	return s.Frames()
}

// WaitClosed waits until Close was called and returns its first error; it fails the test
// after timeout. Call it from the test goroutine.
func (s *Sub) WaitClosed(t testing.TB, timeout time.Duration) *protocol.Error {
	t.Helper()
	if !s.waitFor(func() bool { return len(s.closes) > 0 }, timeout) {
		t.Fatalf("channelstest: socket %s: not closed within %v", s.ID, timeout)
	}
	return s.Closed()
}

// waitFor blocks until cond (evaluated with s.mu held) holds or timeout passes.
func (s *Sub) waitFor(cond func() bool, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if cond() {
			s.mu.Unlock()
			return true
		}
		ch := s.waitLocked()
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			s.mu.Lock()
			ok := cond()
			s.mu.Unlock()
			return ok
		}
	}
}

// String describes the fake for test messages.
func (s *Sub) String() string { return fmt.Sprintf("channelstest.Sub(%s, v%d)", s.ID, s.Version()) }

// Journal records the frames of several fakes in the one order they were sent, each entry
// being "<socket id> <frame>". It is safe for concurrent use.
type Journal struct {
	mu      sync.Mutex
	entries []string
}

func (j *Journal) add(socketID string, frame []byte) {
	j.mu.Lock()
	j.entries = append(j.entries, socketID+" "+string(frame))
	j.mu.Unlock()
}

// Entries returns the recorded entries in order.
func (j *Journal) Entries() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.entries...)
}

// Take returns the recorded entries and forgets them.
func (j *Journal) Take() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := j.entries
	j.entries = nil
	return out
}
