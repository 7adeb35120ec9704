package history_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/history/historytest"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

func newPostgres(t *testing.T, url string, opts history.PostgresOptions) *history.Postgres {
	t.Helper()
	p, err := history.NewPostgres(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestPostgres(t *testing.T) {
	historytest.Run(t, func(t *testing.T) channels.History {
		return newPostgres(t, testkit.PostgresURL(t), history.PostgresOptions{})
	})
}

// Two stores over one database (two nodes) never hand out one serial twice, and a second
// migration run is a no-op.
func TestPostgresTwoNodes(t *testing.T) {
	url := testkit.PostgresURL(t)
	a := newPostgres(t, url, history.PostgresOptions{})
	b := newPostgres(t, url, history.PostgresOptions{})
	done := make(chan []uint64, 2)
	for _, s := range []*history.Postgres{a, b} {
		go func() {
			var got []uint64
			for range 100 {
				m := protocol.Message{Event: "e", Channel: "shared", Data: []byte(`"x"`)}
				if err := s.Append(context.Background(), "app", &m); err != nil {
					t.Error(err)
					break
				}
				got = append(got, m.Serial)
			}
			done <- got
		}()
	}
	seen := map[uint64]bool{}
	for range 2 {
		for _, s := range <-done {
			if seen[s] {
				t.Fatalf("serial %d handed out twice", s)
			}
			seen[s] = true
		}
	}
	if len(seen) != 200 {
		t.Fatalf("%d distinct serials, want 200", len(seen))
	}
}

func TestPostgresRetention(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	p := newPostgres(t, testkit.PostgresURL(t), history.PostgresOptions{MaxMessagesPerChannel: 3, MaxAge: time.Hour, Now: clock, RetentionInterval: time.Hour})
	ctx := context.Background()
	for i := range 5 {
		m := protocol.Message{Event: "e", Channel: "c", Data: []byte(`"x"`), PublishedAtMs: now.Add(time.Duration(i) * time.Minute).UnixMilli()}
		if err := p.Append(ctx, "a", &m); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := p.Trim(ctx); err != nil || n != 2 {
		t.Fatalf("Trim = %d, %v; want 2 by count", n, err)
	}
	st, _ := p.State(ctx, "a", "c")
	if st.HeadSerial != 5 || st.OldestSerial != 3 || st.Retained != 3 {
		t.Fatalf("after count retention: %+v", st)
	}
	now = now.Add(2 * time.Hour)
	if n, err := p.Trim(ctx); err != nil || n != 3 {
		t.Fatalf("Trim = %d, %v; want 3 by age", n, err)
	}
	st, _ = p.State(ctx, "a", "c")
	if st.HeadSerial != 5 || st.Retained != 0 {
		t.Fatalf("after age retention: %+v", st)
	}
	m := protocol.Message{Event: "e", Channel: "c", Data: []byte(`"x"`)}
	if err := p.Append(ctx, "a", &m); err != nil || m.Serial != 6 {
		t.Fatalf("append after retention: serial %d, %v", m.Serial, err)
	}
}

// A store whose database disappears answers quickly with ErrHistoryUnavailable.
func TestPostgresUnavailable(t *testing.T) {
	url := testkit.PostgresURL(t)
	p := newPostgres(t, url, history.PostgresOptions{QueryTimeout: 2 * time.Second})
	ctx := context.Background()
	m := protocol.Message{Event: "e", Channel: "c", Data: []byte(`"x"`)}
	if err := p.Append(ctx, "a", &m); err != nil {
		t.Fatal(err)
	}
	testkit.DropPostgresDatabase(t, url)
	start := time.Now()
	err := p.Append(ctx, "a", &m)
	if !errors.Is(err, channels.ErrHistoryUnavailable) {
		t.Fatalf("append after the database went away: %v", err)
	}
	if _, err := p.State(ctx, "a", "c"); !errors.Is(err, channels.ErrHistoryUnavailable) {
		t.Fatalf("state: %v", err)
	}
	if _, err := p.Read(ctx, "a", "c", protocol.HistoryQuery{Limit: 1}); !errors.Is(err, channels.ErrHistoryUnavailable) {
		t.Fatalf("read: %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("failing calls took %s", d)
	}
}
