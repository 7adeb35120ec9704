package history

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/protocol"
)

// testBatch builds a batch of queued appends, one group per channel in the order given:
// spec is channel, data, channel, data, ….
func testBatch(t *testing.T, p *Postgres, spec ...string) (*batch, []*queued) {
	t.Helper()
	var gs []group
	var all []*queued
	at := map[string]int{}
	for i := 0; i < len(spec); i += 2 {
		ch, data := spec[i], spec[i+1]
		q := &queued{app: "app", ctx: context.Background(), done: make(chan error, 1),
			msg: &protocol.Message{Event: "e", Channel: ch, Data: []byte(`"` + data + `"`), PublishedAtMs: 1}}
		gi, ok := at[ch]
		if !ok {
			gi = len(gs)
			at[ch] = gi
			gs = append(gs, group{key: streamKey{"app", ch}})
		}
		gs[gi].items = append(gs[gi].items, q)
		all = append(all, q)
	}
	b := p.newBatch(gs)
	if b == nil {
		t.Fatal("empty batch")
	}
	return b, all
}

// TestPipelineFailedBatchInTheMiddle: five group commits in flight at once on one
// connection; the second fails in its insert (a trigger refuses one of its messages) and the
// fourth in its bump (a trigger refuses its stream update). Each failed batch fails all of
// its appends and nothing else: the batches around it commit, in the order sent, with serials
// that continue the last committed ones (no gap where the failed ones would have been, no
// duplicate), and the connection goes on serving the store afterwards.
func TestPipelineFailedBatchInTheMiddle(t *testing.T) {
	url := testkit.PostgresURL(t)
	ctx := context.Background()
	p, err := NewPostgres(ctx, url, PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, sql := range []string{
		`CREATE FUNCTION pw_poison() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN IF NEW.data = convert_to('"poison"', 'UTF8') THEN RAISE EXCEPTION 'poisoned message'; END IF; RETURN NEW; END $$`,
		`CREATE TRIGGER pw_poison BEFORE INSERT ON pushwire_messages FOR EACH ROW EXECUTE FUNCTION pw_poison()`,
		`CREATE FUNCTION pw_bad_stream() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN IF NEW.channel = 'bad' THEN RAISE EXCEPTION 'refused stream'; END IF; RETURN NEW; END $$`,
		`CREATE TRIGGER pw_bad_stream BEFORE INSERT OR UPDATE ON pushwire_streams FOR EACH ROW EXECUTE FUNCTION pw_bad_stream()`,
	} {
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	s, err := p.openSession()
	if err != nil {
		t.Fatal(err)
	}
	type sent struct {
		b    *batch
		qs   []*queued
		fail bool
	}
	var batches []sent
	for _, spec := range []struct {
		fail bool
		msgs []string
	}{
		{false, []string{"c", "1", "c", "2", "d", "d1"}},
		{true, []string{"c", "x1", "c", "poison", "d", "x2"}},
		{false, []string{"c", "3", "d", "d2"}},
		{true, []string{"c", "x3", "bad", "x4"}},
		{false, []string{"c", "4", "c", "5", "d", "d3"}},
	} {
		b, qs := testBatch(t, p, spec.msgs...)
		e, err := s.encode(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.send(e); err != nil {
			t.Fatal(err)
		}
		b.deadline = time.Now().Add(time.Minute) // a hang guard only
		batches = append(batches, sent{b, qs, spec.fail})
	}
	for i, bs := range batches {
		if err := s.receive(bs.b); err != nil {
			t.Fatalf("batch %d: the connection failed: %v", i, err)
		}
		for _, q := range bs.qs {
			err := <-q.done
			switch {
			case bs.fail && err == nil:
				t.Errorf("batch %d: %s %s committed, want its batch failed", i, q.msg.Channel, q.msg.Data)
			case bs.fail && errors.Is(err, channels.ErrHistoryUnavailable):
				t.Errorf("batch %d: %v: a statement's error reported as the store unavailable", i, err)
			case !bs.fail && err != nil:
				t.Errorf("batch %d: %s %s: %v", i, q.msg.Channel, q.msg.Data, err)
			}
		}
	}
	s.release()
	// The committers go on, on the same pool's connections.
	m := protocol.Message{Event: "e", Channel: "c", Data: []byte(`"6"`)}
	if err := p.Append(ctx, "app", &m); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		ch, want string
		head     int64
	}{{"c", `1:"1" 2:"2" 3:"3" 4:"4" 5:"5" 6:"6"`, 6}, {"d", `1:"d1" 2:"d2" 3:"d3"`, 3}} {
		ch, want := w.ch, w.want
		rows, err := c.Query(ctx, `SELECT serial, data FROM pushwire_messages WHERE app_id = 'app' AND channel = $1 ORDER BY serial`, ch)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for rows.Next() {
			var serial int64
			var data []byte
			if err := rows.Scan(&serial, &data); err != nil {
				t.Fatal(err)
			}
			got += fmt.Sprintf(" %d:%s", serial, data)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if got != " "+want {
			t.Errorf("%s stored%s, want %s", ch, got, want)
		}
		var head int64
		if err := c.QueryRow(ctx, `SELECT head_serial FROM pushwire_streams WHERE app_id = 'app' AND channel = $1`, ch).Scan(&head); err != nil {
			t.Fatal(err)
		}
		if head != w.head {
			t.Errorf("%s: stream head %d, want %d", ch, head, w.head)
		}
	}
	var bad int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pushwire_streams WHERE channel = 'bad'`).Scan(&bad); err != nil || bad != 0 {
		t.Errorf("the refused stream: %d rows, %v", bad, err)
	}
	// And the acknowledged serials were the stored ones.
	for _, i := range []int{0, 2, 4} {
		for _, q := range batches[i].qs {
			if q.msg.Serial == 0 || q.msg.StreamID == "" {
				t.Errorf("batch %d: %s %s acknowledged without serial/stream", i, q.msg.Channel, q.msg.Data)
			}
		}
	}
	if got := batches[4].qs[1].msg.Serial; got != 5 {
		t.Errorf("c's fifth message got serial %d, want 5", got)
	}
}
