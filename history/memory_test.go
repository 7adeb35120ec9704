package history_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/history/historytest"
	"github.com/pushwire/pushwire/presencehistory"
	"github.com/pushwire/pushwire/protocol"
)

func TestMemory(t *testing.T) {
	historytest.Run(t, func(t *testing.T) channels.History {
		return history.NewMemory(history.MemoryOptions{MaxMessagesPerChannel: 5000})
	})
}

func TestMemoryRetention(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := history.NewMemory(history.MemoryOptions{MaxMessagesPerChannel: 3, MaxAge: time.Minute, Now: func() time.Time { return now }})
	for range 5 {
		m := protocol.Message{Event: "e", Channel: "c", Data: []byte(`"x"`)}
		if err := h.Append(t.Context(), "a", &m); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := h.State(t.Context(), "a", "c")
	if st.HeadSerial != 5 || st.OldestSerial != 3 || st.NewestSerial != 5 || st.Retained != 3 {
		t.Fatalf("count retention: %+v", st)
	}
	now = now.Add(2 * time.Minute)
	st, _ = h.State(t.Context(), "a", "c")
	if st.HeadSerial != 5 || st.Retained != 0 || st.OldestSerial != 0 || st.RetainedBytes != 0 {
		t.Fatalf("age retention: %+v", st)
	}
	m := protocol.Message{Event: "e", Channel: "c", Data: []byte(`"x"`)}
	if err := h.Append(t.Context(), "a", &m); err != nil || m.Serial != 6 {
		t.Fatalf("after expiry: serial %d, %v", m.Serial, err)
	}
}

func TestMemoryShared(t *testing.T) {
	historytest.RunShared(t, func(t *testing.T) (channels.History, channels.History) {
		m := history.NewMemory(history.MemoryOptions{MaxMessagesPerChannel: 5000})
		return m, m
	})
}

func TestMemoryAdmin(t *testing.T) {
	historytest.RunAdmin(t, func(t *testing.T) historytest.AdminStore {
		return history.NewMemory(history.MemoryOptions{MaxMessagesPerChannel: 5000})
	})
	historytest.RunAdminShared(t, func(t *testing.T) (historytest.AdminStore, historytest.AdminStore) {
		m := history.NewMemory(history.MemoryOptions{MaxMessagesPerChannel: 5000})
		return m, m
	})
}

func TestMemoryVersions(t *testing.T) {
	historytest.RunVersions(t, func(t *testing.T) historytest.VersionStore {
		return history.NewMemory(history.MemoryOptions{MaxMessagesPerChannel: 5000})
	})
}

// A mutable message stays mutable when its own deliveries push its create out of the
// stream's retention; mutable messages are bounded by count and by age apart.
func TestMemoryVersionsRetention(t *testing.T) {
	now := time.Now()
	m := history.NewMemory(history.MemoryOptions{MaxMessagesPerChannel: 10, MaxAge: time.Hour, Now: func() time.Time { return now }})
	first := historytest.CreateForTest(t, m, "a", "c", `""`)
	serial := first.Mutable.MessageSerial
	for i := range 25 {
		if err := historytest.AppendForTest(m, "a", "c", serial, fmt.Sprint(i%10)); err != nil {
			t.Fatalf("append %d after the create left the stream: %v", i, err)
		}
	}
	if st, _ := m.State(t.Context(), "a", "c"); st.OldestSerial <= first.Serial {
		t.Fatalf("the create is still retained: %+v", st)
	}
	// Ten newer messages push the first out of the message bound.
	for range 10 {
		historytest.CreateForTest(t, m, "a", "c", `"x"`)
	}
	if _, err := m.Message(t.Context(), "a", "c", serial); !errors.Is(err, channels.ErrMessageNotFound) {
		t.Fatalf("11th-newest message: %v, want not found", err)
	}
	// An hour without a change expires the rest.
	last := historytest.CreateForTest(t, m, "a", "c", `"y"`)
	now = now.Add(2 * time.Hour)
	if _, err := m.Message(t.Context(), "a", "c", last.Mutable.MessageSerial); !errors.Is(err, channels.ErrMessageNotFound) {
		t.Fatalf("expired message: %v", err)
	}
}

func TestMemoryPresence(t *testing.T) {
	historytest.RunPresence(t, func(t *testing.T, clk *historytest.Clock) presencehistory.Store {
		return history.NewMemory(history.MemoryOptions{Now: clk.Now})
	})
}

func TestMemoryPresenceSweep(t *testing.T) {
	historytest.RunPresenceSweep(t, func(t *testing.T, clk *historytest.Clock) presencehistory.Store {
		return history.NewMemory(history.MemoryOptions{Now: clk.Now, SweepEvery: -1})
	})
}

func TestMemoryAnnotations(t *testing.T) {
	historytest.RunAnnotations(t, func(t *testing.T) historytest.AnnotationStore {
		return history.NewMemory(history.MemoryOptions{MaxMessagesPerChannel: 5000})
	})
}
