package integration

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// TestHistoryPostgres runs the same history, rewind and resume groups with the Postgres store.
func TestHistoryPostgres(t *testing.T) {
	t.Parallel()
	s := testkit.Start(t, testkit.Options{Port: -1, Args: []string{"--history", "postgres", "--database-url", testkit.PostgresURL(t)}})
	runHistoryGroups(t, s)
}

// TestResumeAfterRestart: with Postgres, a client that held serial 3 when the server went
// away resumes on a new server process and gets everything published since.
func TestResumeAfterRestart(t *testing.T) {
	t.Parallel()
	const ch = "restart-orders"
	args := []string{"--history", "postgres", "--database-url", testkit.PostgresURL(t)}
	s1 := testkit.Start(t, testkit.Options{Port: -1, Args: args})
	c := connectV2(t, s1, v2Options{})
	c.subscribeV2(t, ch, nil)
	publishN(t, s1, ch, 5)
	for range 3 {
		c.nextMessage(t)
	}
	pos := c.positions[ch] // the client last held serial 3 (4 and 5 were lost in flight)
	if pos.Serial != 3 {
		t.Fatalf("position %+v", pos)
	}
	s1.Stop()

	s2 := testkit.Start(t, testkit.Options{Port: -1, Args: args})
	publishN(t, s2, ch, 5) // serials 6..10, while the client is away
	again := connectV2(t, s2, v2Options{})
	again.sendSubscribeV2(t, ch, nil)
	again.sendResume(t, map[string]protocol.Position{ch: pos})
	ack := again.expectV2(t, "sockudo_internal:subscription_succeeded", ch)
	if ack.StreamID != pos.StreamID || ack.Serial != 10 {
		t.Fatalf("ack after restart %s, want stream %s serial 10", ack.raw, pos.StreamID)
	}
	for want := uint64(4); want <= 10; want++ {
		if f := again.nextMessage(t); f.Serial != want {
			t.Fatalf("replayed %s, want serial %d", f.raw, want)
		}
	}
	done := again.expectV2(t, "sockudo:resume_success", "")
	// 4 and 5 exist only in Postgres (the new process's hot buffer starts at 6).
	if !strings.Contains(done.dataString(), `"source":"cold","replayed":7`) {
		t.Fatalf("resume_success %s", done.raw)
	}
}

// TestHistoryDegraded: with the database gone, publishes still reach subscribers live, the
// log and metrics say history is degraded, and a resume across the hole answers
// persistence_unavailable instead of pretending the stream is complete.
func TestHistoryDegraded(t *testing.T) {
	t.Parallel()
	const ch = "degraded-orders"
	url := testkit.PostgresURL(t)
	s := testkit.Start(t, testkit.Options{Port: -1, Args: []string{"--history", "postgres", "--database-url", url}})
	c := connectV2(t, s, v2Options{})
	c.subscribeV2(t, ch, nil)
	publishN(t, s, ch, 2)
	c.nextMessage(t)
	c.nextMessage(t)
	pos := c.positions[ch]
	testkit.DropPostgresDatabase(t, url)

	publish(t, s, map[string]any{"name": "tick", "channel": ch, "data": "while degraded"})
	f := c.nextMessage(t)
	if f.dataString() != "while degraded" || f.Serial != 0 || f.MessageID == "" {
		t.Fatalf("live delivery while degraded: %s", f.raw)
	}
	again := connectV2(t, s, v2Options{})
	again.sendSubscribeV2(t, ch, nil)
	again.sendResume(t, map[string]protocol.Position{ch: pos})
	for {
		f := again.nextV2(t)
		if f.Event == "sockudo:resume_failed" {
			if !strings.Contains(f.dataString(), `"code":"persistence_unavailable"`) {
				t.Fatalf("resume_failed %s", f.raw)
			}
			break
		}
		if f.Event != "sockudo_internal:subscription_succeeded" && f.Event != "sockudo:error" {
			t.Fatalf("unexpected %s", f.raw)
		}
	}
	again.expectV2(t, "sockudo:resume_success", "")
	testkit.WaitFor(t, frameTimeout, "degraded history in the log", func() bool { return strings.Contains(s.Output(), "history degraded") })
	resp, err := http.Get("http://" + s.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), `pushwire_history_append_errors_total{app="app-id"} 1`) {
		t.Fatalf("metrics do not count the failed append:\n%s", grepLines(string(b), "history"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
