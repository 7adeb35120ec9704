package history_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/history"
	"github.com/pushwire/pushwire/history/historytest"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/presencehistory"
	"github.com/pushwire/pushwire/protocol"
)

func newPostgres(t testing.TB, url string, opts history.PostgresOptions) *history.Postgres {
	t.Helper()
	p, err := history.NewPostgres(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// sqlConn is a plain connection to a test database, for looking under the store.
func sqlConn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func queryInt(t *testing.T, c *pgx.Conn, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := c.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestPostgres(t *testing.T) {
	historytest.Run(t, func(t *testing.T) channels.History {
		return newPostgres(t, testkit.PostgresURL(t), history.PostgresOptions{})
	})
}

// Two stores over one database, as two nodes: one stream, distinct gap-free serials.
func TestPostgresShared(t *testing.T) {
	historytest.RunShared(t, func(t *testing.T) (channels.History, channels.History) {
		url := testkit.PostgresURL(t)
		return newPostgres(t, url, history.PostgresOptions{}), newPostgres(t, url, history.PostgresOptions{})
	})
}

func TestPostgresAdmin(t *testing.T) {
	historytest.RunAdmin(t, func(t *testing.T) historytest.AdminStore {
		return newPostgres(t, testkit.PostgresURL(t), history.PostgresOptions{})
	})
}

// Two stores over one database, as two nodes: a reset or purge through one is what the other
// sees, and appends and mutations racing a reset through the other land before it or after.
func TestPostgresAdminShared(t *testing.T) {
	historytest.RunAdminShared(t, func(t *testing.T) (historytest.AdminStore, historytest.AdminStore) {
		url := testkit.PostgresURL(t)
		return newPostgres(t, url, history.PostgresOptions{}), newPostgres(t, url, history.PostgresOptions{})
	})
}

// The count trim a store owes a channel from before a reset never touches the new stream:
// with at most 5 messages kept, 10 appends mark the channel for a trim up to serial 5; after
// a reset the new stream's serials 1..3 survive that trim.
func TestPostgresTrimAfterReset(t *testing.T) {
	url := testkit.PostgresURL(t)
	p := newPostgres(t, url, history.PostgresOptions{MaxMessagesPerChannel: 5})
	other := newPostgres(t, url, history.PostgresOptions{MaxMessagesPerChannel: 5})
	for range 10 {
		m := protocol.Message{Event: "e", Channel: "c", Data: []byte(`"x"`)}
		if err := p.Append(context.Background(), "a", &m); err != nil {
			t.Fatal(err)
		}
	}
	// other (another node) resets: p still owes the old stream its trim.
	if _, err := other.Reset(context.Background(), "a", "c"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		m := protocol.Message{Event: "e", Channel: "c", Data: []byte(`"y"`)}
		if err := other.Append(context.Background(), "a", &m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Trim(context.Background()); err != nil {
		t.Fatal(err)
	}
	page, err := p.Read(context.Background(), "a", "c", protocol.HistoryQuery{Direction: protocol.OldestFirst, Limit: 10})
	if err != nil || len(page.Items) != 3 || page.Items[0].Serial != 1 {
		t.Fatalf("after the trim: %d messages, %v", len(page.Items), err)
	}
}

func TestPostgresVersions(t *testing.T) {
	historytest.RunVersions(t, func(t *testing.T) historytest.VersionStore {
		return newPostgres(t, testkit.PostgresURL(t), history.PostgresOptions{})
	})
}

// Two stores over one database: appends to one message through both apply in one order.
func TestPostgresVersionsShared(t *testing.T) {
	historytest.RunVersionsShared(t, func(t *testing.T) (historytest.VersionStore, historytest.VersionStore) {
		url := testkit.PostgresURL(t)
		return newPostgres(t, url, history.PostgresOptions{}), newPostgres(t, url, history.PostgresOptions{})
	})
}

// Mutable messages outlive the stream's count retention and go after MaxAge without a
// change: Trim deletes them with their versions.
func TestPostgresVersionsRetention(t *testing.T) {
	url := testkit.PostgresURL(t)
	now := time.Now()
	p := newPostgres(t, url, history.PostgresOptions{MaxMessagesPerChannel: 5, MaxAge: time.Hour, Now: func() time.Time { return now }})
	m := historytest.CreateForTest(t, p, "a", "c", `""`)
	serial := m.Mutable.MessageSerial
	for i := range 12 {
		if err := historytest.AppendForTest(p, "a", "c", serial, fmt.Sprint(i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if _, err := p.Trim(context.Background()); err != nil {
		t.Fatal(err)
	}
	if agg, err := p.Message(context.Background(), "a", "c", serial); err != nil || string(agg.Data) != `"01234567891011"` {
		t.Fatalf("after count trim: %s, %v", agg.Data, err)
	}
	now = now.Add(2 * time.Hour)
	if _, err := p.Message(context.Background(), "a", "c", serial); !errors.Is(err, channels.ErrMessageNotFound) {
		t.Fatalf("expired message: %v", err)
	}
	if _, err := p.Trim(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := sqlConn(t, url)
	if n := queryInt(t, c, "SELECT count(*) FROM pushwire_versioned_messages") + queryInt(t, c, "SELECT count(*) FROM pushwire_message_versions"); n != 0 {
		t.Fatalf("%d rows left after the age trim", n)
	}
}

// Servers starting together on an empty database apply each migration once; a later start
// applies nothing.
func TestPostgresMigrationsConcurrent(t *testing.T) {
	url := testkit.PostgresURL(t)
	const servers = 6
	var wg sync.WaitGroup
	for range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := history.NewPostgres(context.Background(), url, history.PostgresOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			p.Close()
		}()
	}
	wg.Wait()
	c := sqlConn(t, url)
	versions := func() string {
		rows, _ := c.Query(context.Background(), "SELECT version FROM pushwire_schema_migrations ORDER BY version")
		vs, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(vs)
	}
	want := migrationVersions(t)
	if got := versions(); got != want {
		t.Fatalf("applied migrations %s, want %s", got, want)
	}
	newPostgres(t, url, history.PostgresOptions{})
	if got := versions(); got != want {
		t.Fatalf("after a restart: %s, want %s", got, want)
	}
}

// A database at schema version 1 with messages in it upgrades in place: old messages read
// back, serials continue, State's sizes include them.
func TestPostgresUpgradeFromV1(t *testing.T) {
	url := testkit.PostgresURL(t)
	c := sqlConn(t, url)
	ctx := context.Background()
	v1, err := os.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		string(v1),
		`CREATE TABLE pushwire_schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
		`INSERT INTO pushwire_schema_migrations (version) VALUES (1)`,
		`INSERT INTO pushwire_streams VALUES ('app', 'old', 'c6d1a3d4-26c5-4b8e-9a4b-6a3f2f0f3d55', 3)`,
		`INSERT INTO pushwire_messages (app_id, channel, serial, stream_id, event, data, name, user_id, tags, message_id, extras, published_at_ms, size_bytes) VALUES
		 ('app', 'old', 2, 'c6d1a3d4-26c5-4b8e-9a4b-6a3f2f0f3d55', 'e2', '"two"', '', 'u', '{"k":"v"}', 'm2', NULL, (extract(epoch from now()) * 1000)::bigint - 2000, 100),
		 ('app', 'old', 3, 'c6d1a3d4-26c5-4b8e-9a4b-6a3f2f0f3d55', 'e3', '"three"', 'n', '', NULL, 'm3', '{"echo":true}', (extract(epoch from now()) * 1000)::bigint - 1000, 50)`,
	} {
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	p := newPostgres(t, url, history.PostgresOptions{})
	st, err := p.State(ctx, "app", "old")
	if err != nil || st.HeadSerial != 3 || st.OldestSerial != 2 || st.Retained != 2 || st.RetainedBytes != 150 {
		t.Fatalf("State after the upgrade = %+v, %v", st, err)
	}
	page, err := p.Read(ctx, "app", "old", protocol.HistoryQuery{Direction: protocol.OldestFirst, Limit: 10})
	if err != nil || len(page.Items) != 2 {
		t.Fatalf("Read = %+v, %v", page, err)
	}
	if m := page.Items[0]; m.Event != "e2" || string(m.Data) != `"two"` || m.UserID != "u" || m.Tags["k"] != "v" || m.MessageID != "m2" || m.Extras != nil {
		t.Fatalf("old message 2 read as %+v", m)
	}
	if m := page.Items[1]; m.Event != "e3" || m.Name != "n" || string(m.Extras) != `{"echo":true}` {
		t.Fatalf("old message 3 read as %+v", m)
	}
	m := protocol.Message{Event: "e4", Channel: "old", Data: []byte(`"four"`)}
	if err := p.Append(ctx, "app", &m); err != nil || m.Serial != 4 || m.StreamID != st.StreamID {
		t.Fatalf("append after the upgrade: %+v, %v", m, err)
	}
	if st2, _ := p.State(ctx, "app", "old"); st2.Retained != 3 || st2.RetainedBytes <= 150 {
		t.Fatalf("State after an append = %+v", st2)
	}
}

// Retention: reads and State apply both bounds at once; Trim then deletes exactly what they
// no longer show; the head serial survives.
func TestPostgresRetention(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Now().UnixMilli())
	clock := func() time.Time { return time.UnixMilli(now.Load()) }
	url := testkit.PostgresURL(t)
	p := newPostgres(t, url, history.PostgresOptions{MaxMessagesPerChannel: 3, MaxAge: time.Hour, Now: clock, RetentionInterval: time.Hour})
	c := sqlConn(t, url)
	ctx := context.Background()
	t0 := now.Load()
	var sizes []int64
	for i := range 5 {
		m := protocol.Message{Event: "e", Channel: "c", Data: []byte(fmt.Sprintf(`"%0*d"`, i+1, i)), PublishedAtMs: t0 + int64(i)*60_000}
		if err := p.Append(ctx, "a", &m); err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, queryInt(t, c, "SELECT size_bytes FROM pushwire_messages WHERE serial = $1", i+1))
	}
	check := func(when string, want protocol.StreamState, serials string) {
		t.Helper()
		st, err := p.State(ctx, "a", "c")
		want.StreamID = st.StreamID
		if err != nil || st != want {
			t.Fatalf("%s: State = %+v, %v\nwant %+v", when, st, err, want)
		}
		page, err := p.Read(ctx, "a", "c", protocol.HistoryQuery{Direction: protocol.OldestFirst, Limit: 10})
		var got []uint64
		for _, m := range page.Items {
			got = append(got, m.Serial)
		}
		if err != nil || fmt.Sprint(got) != serials {
			t.Fatalf("%s: Read = %v, %v; want %s", when, got, err, serials)
		}
	}
	byCount := protocol.StreamState{HeadSerial: 5, OldestSerial: 3, NewestSerial: 5, OldestMs: t0 + 120_000, NewestMs: t0 + 240_000,
		Retained: 3, RetainedBytes: sizes[2] + sizes[3] + sizes[4]}
	check("before the trim", byCount, "[3 4 5]")
	if n, err := p.Trim(ctx); err != nil || n != 2 {
		t.Fatalf("Trim = %d, %v; want 2 by count", n, err)
	}
	check("after the count trim", byCount, "[3 4 5]")
	if n := queryInt(t, c, "SELECT count(*) FROM pushwire_messages"); n != 3 {
		t.Fatalf("%d rows left, want 3", n)
	}

	now.Store(t0 + int64(time.Hour/time.Millisecond) + 150_000) // messages 1..3 expired
	byAge := protocol.StreamState{HeadSerial: 5, OldestSerial: 4, NewestSerial: 5, OldestMs: t0 + 180_000, NewestMs: t0 + 240_000,
		Retained: 2, RetainedBytes: sizes[3] + sizes[4]}
	check("expired, before the trim", byAge, "[4 5]")
	if n, err := p.Trim(ctx); err != nil || n != 1 {
		t.Fatalf("Trim = %d, %v; want 1 by age", n, err)
	}
	check("after the age trim", byAge, "[4 5]")

	now.Add(int64(time.Hour / time.Millisecond))
	check("all expired", protocol.StreamState{HeadSerial: 5}, "[]")
	if n, err := p.Trim(ctx); err != nil || n != 2 {
		t.Fatalf("Trim = %d, %v; want 2", n, err)
	}
	m := protocol.Message{Event: "e", Channel: "c", Data: []byte(`"x"`)}
	if err := p.Append(ctx, "a", &m); err != nil || m.Serial != 6 {
		t.Fatalf("append after retention: serial %d, %v", m.Serial, err)
	}
	check("appended after", protocol.StreamState{HeadSerial: 6, OldestSerial: 6, NewestSerial: 6, OldestMs: m.PublishedAtMs, NewestMs: m.PublishedAtMs,
		Retained: 1, RetainedBytes: queryInt(t, c, "SELECT size_bytes FROM pushwire_messages WHERE serial = 6")}, "[6]")
}

// Out-of-order publish times (two nodes' clocks) never punch a hole in the retained range:
// retention drops a prefix, up to the first unexpired message, as Memory does.
func TestPostgresRetentionContiguous(t *testing.T) {
	now := time.Now()
	url := testkit.PostgresURL(t)
	p := newPostgres(t, url, history.PostgresOptions{MaxAge: time.Hour, Now: func() time.Time { return now }, RetentionInterval: time.Hour})
	ctx := context.Background()
	old, fresh := now.Add(-2*time.Hour).UnixMilli(), now.Add(-time.Minute).UnixMilli()
	for _, at := range []int64{old, old, fresh, old, fresh} {
		m := protocol.Message{Event: "e", Channel: "c", Data: []byte(`"x"`), PublishedAtMs: at}
		if err := p.Append(ctx, "a", &m); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := p.State(ctx, "a", "c")
	if st.OldestSerial != 3 || st.NewestSerial != 5 || st.Retained != 3 {
		t.Fatalf("State = %+v; want serials 3..5", st)
	}
	if n, err := p.Trim(ctx); err != nil || n != 2 {
		t.Fatalf("Trim = %d, %v; want 2", n, err)
	}
	page, _ := p.Read(ctx, "a", "c", protocol.HistoryQuery{Direction: protocol.OldestFirst, Limit: 10})
	if len(page.Items) != 3 || page.Items[0].Serial != 3 || page.Items[1].Serial != 4 || page.Items[2].Serial != 5 {
		t.Fatalf("Read after the trim: %+v", page.Items)
	}
}

// The background loop trims by count and by age across many channels (more than one batch).
func TestPostgresRetentionLoop(t *testing.T) {
	url := testkit.PostgresURL(t)
	var now atomic.Int64
	now.Store(time.Now().UnixMilli())
	p := newPostgres(t, url, history.PostgresOptions{MaxMessagesPerChannel: 2, MaxAge: time.Hour, RetentionInterval: 20 * time.Millisecond,
		Now: func() time.Time { return time.UnixMilli(now.Load()) }})
	c := sqlConn(t, url)
	const chans, each = 600, 3
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < chans; i += 8 {
				for range each {
					m := protocol.Message{Event: "e", Channel: fmt.Sprintf("c%03d", i), Data: []byte(`"x"`)}
					if err := p.Append(context.Background(), "a", &m); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	rows := func() int64 { return queryInt(t, c, "SELECT count(*) FROM pushwire_messages") }
	testkit.WaitFor(t, 10*time.Second, "count retention", func() bool { return rows() == chans*2 })
	now.Add(2 * int64(time.Hour/time.Millisecond))
	testkit.WaitFor(t, 10*time.Second, "age retention", func() bool { return rows() == 0 })
	if n := queryInt(t, c, "SELECT count(*) FROM pushwire_streams WHERE head_serial = $1", each); n != chans {
		t.Fatalf("%d streams kept their head, want %d", n, chans)
	}
}

// Close stops the retention loop promptly; the store then fails cleanly.
func TestPostgresClose(t *testing.T) {
	p, err := history.NewPostgres(context.Background(), testkit.PostgresURL(t), history.PostgresOptions{RetentionInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// The retention loop runs every millisecond; Close must stop it and return (a hang here
	// fails on the guard below, which is not a timing assertion).
	closed := make(chan struct{})
	go func() {
		p.Close()
		p.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(time.Minute):
		t.Fatal("Close never returned")
	}
	m := protocol.Message{Event: "e", Channel: "c"}
	if err := p.Append(context.Background(), "a", &m); err == nil {
		t.Fatal("Append on a closed store succeeded")
	}
}

// checkUnavailable asserts that every method fails with ErrHistoryUnavailable, and returns
// (the store's QueryTimeout bounds it; the test only guards against a hang).
func checkUnavailable(t *testing.T, p *history.Postgres) {
	t.Helper()
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"append": func() error {
			m := protocol.Message{Event: "e", Channel: "c", Data: []byte(`"x"`)}
			return p.Append(ctx, "a", &m)
		},
		"read": func() error {
			_, err := p.Read(ctx, "a", "c", protocol.HistoryQuery{Limit: 1})
			return err
		},
		"state": func() error {
			_, err := p.State(ctx, "a", "c")
			return err
		},
	} {
		res := make(chan error, 1)
		go func() { res <- call() }()
		var err error
		select {
		case err = <-res:
		case <-time.After(time.Minute): // a hang guard, far above any QueryTimeout here
			t.Fatalf("%s never returned: the query timeout was not applied", name)
		}
		if !errors.Is(err, channels.ErrHistoryUnavailable) {
			t.Errorf("%s: %v, want ErrHistoryUnavailable", name, err)
		}
	}
}

// A store whose database disappears answers with ErrHistoryUnavailable, quickly.
func TestPostgresDatabaseDropped(t *testing.T) {
	url := testkit.PostgresURL(t)
	p := newPostgres(t, url, history.PostgresOptions{QueryTimeout: time.Second})
	m := protocol.Message{Event: "e", Channel: "c", Data: []byte(`"x"`)}
	if err := p.Append(context.Background(), "a", &m); err != nil {
		t.Fatal(err)
	}
	testkit.DropPostgresDatabase(t, url)
	checkUnavailable(t, p)
}

// Nothing listening: NewPostgres fails fast with ErrHistoryUnavailable.
func TestPostgresNoServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = history.NewPostgres(context.Background(), "postgres://postgres@"+addr+"/x?sslmode=disable", history.PostgresOptions{QueryTimeout: time.Second})
	if !errors.Is(err, channels.ErrHistoryUnavailable) {
		t.Fatalf("NewPostgres without a server: %v", err)
	}
}

// A network partition (the database stops answering, connections stay open): every call
// fails within QueryTimeout with ErrHistoryUnavailable, and the store recovers by itself
// once the database answers again.
func TestPostgresPartition(t *testing.T) {
	url := testkit.PostgresURL(t)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, fmt.Sprintf("%s:%d", cfg.Host, cfg.Port))
	proxied := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", cfg.User, px.addr(), cfg.Database)
	const timeout = 300 * time.Millisecond
	p := newPostgres(t, proxied, history.PostgresOptions{QueryTimeout: timeout})
	ctx := context.Background()
	for range 3 {
		m := protocol.Message{Event: "e", Channel: "c", Data: []byte(`"x"`)}
		if err := p.Append(ctx, "a", &m); err != nil {
			t.Fatal(err)
		}
	}
	px.setBlackhole(true)
	checkUnavailable(t, p)
	checkUnavailable(t, p)
	px.setBlackhole(false)
	var m protocol.Message
	testkit.WaitFor(t, 10*time.Second, "the store to recover", func() bool {
		m = protocol.Message{Event: "e", Channel: "c", Data: []byte(`"x"`)}
		return p.Append(ctx, "a", &m) == nil
	})
	if m.Serial != 4 {
		t.Fatalf("first append after the partition got serial %d, want 4", m.Serial)
	}
}

// proxy forwards TCP connections to a target; blackholed, it forwards nothing and answers
// nothing, keeping connections open.
type proxy struct {
	ln     net.Listener
	target string

	mu        sync.Mutex
	blackhole bool
	conns     map[net.Conn]bool
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go px.serve()
	t.Cleanup(func() {
		ln.Close()
		px.closeAll()
	})
	return px
}

func (px *proxy) addr() string { return px.ln.Addr().String() }

func (px *proxy) serve() {
	for {
		c, err := px.ln.Accept()
		if err != nil {
			return
		}
		px.mu.Lock()
		px.conns[c] = true
		hole := px.blackhole
		px.mu.Unlock()
		if hole {
			go func() { _, _ = io.Copy(io.Discard, c) }()
			continue
		}
		up, err := net.Dial("tcp", px.target)
		if err != nil {
			c.Close()
			continue
		}
		px.mu.Lock()
		px.conns[up] = true
		px.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		go func() { _, _ = io.Copy(c, up) }()
	}
}

// setBlackhole(true) cuts every upstream connection while the clients' stay open and
// silent; setBlackhole(false) closes those and forwards new connections again.
func (px *proxy) setBlackhole(on bool) {
	px.mu.Lock()
	defer px.mu.Unlock()
	px.blackhole = on
	for c := range px.conns {
		if on {
			if c.LocalAddr().String() == px.addr() {
				go func() { _, _ = io.Copy(io.Discard, c) }()
				continue
			}
		}
		c.Close()
		delete(px.conns, c)
	}
}

func (px *proxy) closeAll() {
	px.mu.Lock()
	defer px.mu.Unlock()
	for c := range px.conns {
		c.Close()
	}
}

func TestPostgresAnnotations(t *testing.T) {
	historytest.RunAnnotations(t, func(t *testing.T) historytest.AnnotationStore {
		return newPostgres(t, testkit.PostgresURL(t), history.PostgresOptions{})
	})
}

// Two stores over one database: annotations through both get one serial order.
func TestPostgresAnnotationsShared(t *testing.T) {
	historytest.RunAnnotationsShared(t, func(t *testing.T) (historytest.AnnotationStore, historytest.AnnotationStore) {
		url := testkit.PostgresURL(t)
		return newPostgres(t, url, history.PostgresOptions{}), newPostgres(t, url, history.PostgresOptions{})
	})
}

func TestPostgresPresence(t *testing.T) {
	historytest.RunPresence(t, func(t *testing.T, clk *historytest.Clock) presencehistory.Store {
		return newPostgres(t, testkit.PostgresURL(t), history.PostgresOptions{Now: clk.Now})
	})
}

// Two stores over one database, as two nodes: one presence stream per channel, distinct
// gap-free serials, one change reported by both recorded once.
func TestPostgresPresenceShared(t *testing.T) {
	historytest.RunPresenceShared(t, func(t *testing.T, clk *historytest.Clock) (presencehistory.Store, presencehistory.Store) {
		url := testkit.PostgresURL(t)
		return newPostgres(t, url, history.PostgresOptions{Now: clk.Now}), newPostgres(t, url, history.PostgresOptions{Now: clk.Now})
	})
}

// migrationVersions lists the versions of the migration files (migrations/NNNN_*.sql), as
// pushwire_schema_migrations should hold them once applied: "[1 2 3 …]".
func migrationVersions(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migration files: %v %v", files, err)
	}
	var vs []int
	for _, f := range files {
		n, err := strconv.Atoi(strings.SplitN(filepath.Base(f), "_", 2)[0])
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		vs = append(vs, n)
	}
	sort.Ints(vs)
	return fmt.Sprint(vs)
}

// Group-committed appends: many writers on two stores over one database (two nodes), many
// channels, nothing waited for between appends.
func TestPostgresPipelined(t *testing.T) {
	historytest.RunPipelined(t, func(t *testing.T) (channels.PipelinedHistory, channels.PipelinedHistory) {
		url := testkit.PostgresURL(t)
		return newPostgres(t, url, history.PostgresOptions{}), newPostgres(t, url, history.PostgresOptions{})
	})
}

// Creates of mutable messages queued between appends (group-committed together).
func TestPostgresPipelinedCreates(t *testing.T) {
	historytest.RunPipelinedCreates(t, newPostgres(t, testkit.PostgresURL(t), history.PostgresOptions{}))
}
