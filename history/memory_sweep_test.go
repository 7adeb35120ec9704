package history_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/history/historytest"
	"github.com/pushwire/pushwire/protocol"
)

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// publishOnce appends one message of size bytes to each of n channels.
func publishOnce(t *testing.T, m *history.Memory, n, size int) {
	t.Helper()
	data := []byte(`"` + strings.Repeat("x", size) + `"`)
	for i := range n {
		msg := protocol.Message{Event: "e", Channel: fmt.Sprintf("ch-%d", i), Data: data}
		if err := m.Append(t.Context(), "a", &msg); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMemorySweepFreesIdleStreams (issue 16, finding 4): 50,000 channels published once are
// freed once their messages are older than MaxAge, without the channels being touched again.
// A channel written within MaxAge is kept, so is one whose message is not expired yet; a
// mutable message's state goes when it expires; a freed channel's next message starts a new
// stream.
func TestMemorySweepFreesIdleStreams(t *testing.T) {
	const channels = 50_000
	now := time.Now() // mutable versions carry the real time
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	m := history.NewMemory(history.MemoryOptions{MaxAge: 5 * time.Second, Now: clock, SweepEvery: -1})
	defer m.Close()

	before := liveHeap()
	historytest.CreateForTest(t, m, "a", "mutable", `"m"`)
	publishOnce(t, m, channels, 1000)
	old := protocol.Message{Event: "e", Channel: "ch-0"}
	if err := m.Append(t.Context(), "a", &old); err != nil {
		t.Fatal(err)
	}
	later := protocol.Message{Event: "e", Channel: "later", PublishedAtMs: clock().Add(10 * time.Second).UnixMilli()}
	if err := m.Append(t.Context(), "a", &later); err != nil {
		t.Fatal(err)
	}
	full := liveHeap()
	advance(4 * time.Second)
	recent := protocol.Message{Event: "e", Channel: "recent", Data: []byte(`"r"`)}
	if err := m.Append(t.Context(), "a", &recent); err != nil {
		t.Fatal(err)
	}
	advance(2 * time.Second)
	m.Sweep()
	after := liveHeap()
	t.Logf("heap: %d MB before, %d MB with %d channels, %d MB after the sweep", before>>20, full>>20, channels, after>>20)
	if got := m.Streams(); got != 2 {
		t.Errorf("%d streams kept, want 2 (recent and later)", got)
	}
	if int64(after)-int64(before) > 4<<20 {
		t.Errorf("heap still %d MB above its start after the sweep", (int64(after)-int64(before))>>20)
	}
	for _, ch := range []string{"recent", "later"} {
		if st, _ := m.State(t.Context(), "a", ch); st.Retained != 1 {
			t.Errorf("%s: %+v", ch, st)
		}
	}
	again := protocol.Message{Event: "e", Channel: "ch-0"}
	if err := m.Append(t.Context(), "a", &again); err != nil || again.Serial != 1 || again.StreamID == old.StreamID {
		t.Errorf("after the sweep: serial %d stream %q (was %q), %v", again.Serial, again.StreamID, old.StreamID, err)
	}
	// Later, with nothing written, everything is gone.
	advance(10 * time.Second)
	m.Sweep()
	if got := m.Streams(); got != 0 {
		t.Errorf("%d streams kept after everything expired", got)
	}
}

// TestMemoryExpiresOnItsOwn: the store's own background sweeper frees idle channels (real
// clock; waits on the heap going down, with a hang guard), and Close stops it.
func TestMemoryExpiresOnItsOwn(t *testing.T) {
	before := liveHeap()
	m := history.NewMemory(history.MemoryOptions{MaxAge: 200 * time.Millisecond})
	publishOnce(t, m, 10_000, 1000)
	full := liveHeap()
	if full < before+8<<20 {
		t.Fatalf("heap rose by only %d bytes: the test measures nothing", full-before)
	}
	guard := time.Now().Add(30 * time.Second) // a hang guard, not a measurement
	for m.Streams() > 0 {
		if time.Now().After(guard) {
			t.Fatalf("idle channels not freed: %d streams held", m.Streams())
		}
		time.Sleep(20 * time.Millisecond) // polls the sweeper's progress
	}
	if after := liveHeap(); after > before+(full-before)/10 {
		t.Errorf("heap %d MB above its start once every stream was freed (%d MB with them)", (after-before)>>20, (full-before)>>20)
	}
	m.Close()
	m.Close()
}

// TestMemorySweepRacesWriters: writers appending to channels the sweeper is dropping never
// lose a message: each append is readable right after it.
func TestMemorySweepRacesWriters(t *testing.T) {
	var nowMs atomic.Int64
	nowMs.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	clock := func() time.Time { return time.UnixMilli(nowMs.Load()) }
	m := history.NewMemory(history.MemoryOptions{MaxAge: time.Second, Now: clock, SweepEvery: -1})
	defer m.Close()
	const chans, rounds = 64, 200
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				m.Sweep()
			}
		}
	}()
	for r := range rounds {
		var writers sync.WaitGroup
		for w := range 4 {
			writers.Add(1)
			go func() {
				defer writers.Done()
				for c := w; c < chans; c += 4 {
					msg := protocol.Message{Event: "e", Channel: fmt.Sprintf("c%d", c), Data: []byte(`"x"`)}
					if err := m.Append(t.Context(), "a", &msg); err != nil {
						t.Error(err)
						return
					}
					st, _ := m.State(t.Context(), "a", msg.Channel)
					if st.StreamID != msg.StreamID || st.HeadSerial < msg.Serial || st.Retained == 0 {
						t.Errorf("round %d: message %s/%d lost: state %+v", r, msg.StreamID, msg.Serial, st)
					}
				}
			}()
		}
		writers.Wait()
		nowMs.Add(2000) // everything written so far is now expired
	}
	close(stop)
	wg.Wait()
}
