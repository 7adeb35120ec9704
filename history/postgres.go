package history

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

//go:embed migrations/*.sql
var migrations embed.FS

// PostgresOptions tune a Postgres store. The zero value gives the defaults.
type PostgresOptions struct {
	// MaxMessagesPerChannel caps the retained messages of one channel. Default 10000.
	MaxMessagesPerChannel int
	// MaxAge drops messages older than this. Default 24h.
	MaxAge time.Duration
	// RetentionInterval is how often the background trim runs. Default 1 minute.
	RetentionInterval time.Duration
	// QueryTimeout bounds every statement (a group commit of appends: three times it, from
	// the moment it is sent, pipelined behind at most a few others),
	// and connecting unless the URL sets connect_timeout. Default 5s.
	QueryTimeout time.Duration
	// MaxConns sizes the connection pool. Default: pool_max_conns from the URL, else 16.
	MaxConns int32
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives retention and migration logs. Default: none.
	Logger *zap.Logger
}

// Defaults of PostgresOptions.
const (
	// DefaultPostgresMessages is the default per-channel bound of the Postgres store.
	DefaultPostgresMessages = 10000
	// DefaultRetentionInterval is how often the Postgres store trims by default.
	DefaultRetentionInterval = time.Minute
	// DefaultQueryTimeout bounds one Postgres statement by default.
	DefaultQueryTimeout = 5 * time.Second
	// DefaultPostgresConns is the default pool size when the URL sets no pool_max_conns.
	DefaultPostgresConns = 16
)

// Retention batches: channels per pipelined count-trim batch, expired rows sampled per age
// batch (their channels' expired prefixes are deleted).
const (
	trimStreamBatch = 500
	trimAgeBatch    = 5000
)

// Advisory lock keys: migrations (session lock, waited for) and age retention (transaction
// lock, tried: one node runs the age pass at a time, the others skip it).
const (
	migrationLock = 7_231_845_120
	retentionLock = 7_231_845_121
)

// Postgres is a durable history store shared by every node using the same database.
//
// A channel's serial is allocated by the statement that stores the message (an upsert of its
// pushwire_streams row, whose row lock orders appends to one channel across nodes), so nodes
// never repeat a serial, serials have no gaps, and serial n+1 only becomes visible after n.
//
// Retained messages are always a contiguous serial range ending at the stream's head: the
// oldest one is the first of the last MaxMessagesPerChannel serials published within MaxAge
// (Memory's rule too). Reads and State apply that bound themselves, so they are exact
// whatever the background trim has physically deleted so far; the trim only removes
// prefixes, in batches, outside the append path.
type Postgres struct {
	pool *pgxpool.Pool
	opts PostgresOptions
	stop context.CancelFunc
	done sync.WaitGroup
	once sync.Once

	// dirty holds the channels this store appended to past MaxMessagesPerChannel since the
	// last count trim, with their stream and head serial.
	dirtyMu sync.Mutex
	dirty   map[streamKey]streamMark

	// qmu guards the appends waiting for a group commit (postgres_commit.go).
	qmu      sync.Mutex
	pipes    []*pipe
	pipeSeed maphash.Seed
	closed   bool
	closing  chan struct{}
}

// sendBufferBytes is the kernel send buffer asked for on every connection to Postgres (the
// kernel caps it at net.core.wmem_max). A group commit is one write of up to a few hundred
// kilobytes; with the default buffer (16 KB, autotuned upwards) that write stops several times
// until Postgres has read the start of it, and each time the committer must be scheduled
// again to go on, behind whatever else the server's cores are running (on a busy one-core
// server: the deliveries of the previous commit). With the whole batch in the kernel's buffer,
// Postgres reads it at its own pace and nothing waits on the Go scheduler until the answer.
const sendBufferBytes = 4 << 20

// largeSendBuffer wraps dial so that its connections ask for sendBufferBytes of send buffer.
func largeSendBuffer(dial pgconn.DialFunc) pgconn.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if b, ok := c.(interface{ SetWriteBuffer(int) error }); ok {
			_ = b.SetWriteBuffer(sendBufferBytes) // a smaller buffer only costs time
		}
		return c, nil
	}
}

// streamMark is a position in one stream of a channel.
type streamMark struct {
	stream string
	head   uint64
}

// later returns the later of two marks of a channel: the other stream's after a reset.
func (m streamMark) later(o streamMark) streamMark {
	if m.stream != o.stream && o.stream != "" {
		return o
	}
	if o.head > m.head {
		return o
	}
	return m
}

// NewPostgres connects to dsn, applies the embedded migrations (once, under an advisory
// lock, however many servers start together) and starts the retention loop.
func NewPostgres(ctx context.Context, dsn string, opts PostgresOptions) (*Postgres, error) {
	if opts.MaxMessagesPerChannel <= 0 {
		opts.MaxMessagesPerChannel = DefaultPostgresMessages
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.RetentionInterval <= 0 {
		opts.RetentionInterval = DefaultRetentionInterval
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = DefaultQueryTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("history: database url: %w", err)
	}
	if !strings.Contains(dsn, "connect_timeout") {
		cfg.ConnConfig.ConnectTimeout = opts.QueryTimeout
	}
	switch {
	case opts.MaxConns > 0:
		cfg.MaxConns = opts.MaxConns
	case !strings.Contains(dsn, "pool_max_conns"):
		cfg.MaxConns = max(cfg.MaxConns, DefaultPostgresConns)
	}
	cfg.ConnConfig.DialFunc = largeSendBuffer(cfg.ConnConfig.DialFunc)
	if err := migrate(ctx, cfg.ConnConfig, opts); err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("history: connect: %w", unavailable(ctx, err))
	}
	loopCtx, stop := context.WithCancel(context.Background())
	p := &Postgres{pool: pool, opts: opts, stop: stop, dirty: map[streamKey]streamMark{}, closing: make(chan struct{}),
		pipeSeed: maphash.MakeSeed()}
	p.pipes = newPipes(p)
	p.done.Add(1 + len(p.pipes))
	go p.retentionLoop(loopCtx)
	for _, pp := range p.pipes {
		go pp.run()
	}
	return p, nil
}

// Close stops the retention loop (cancelling a trim under way), commits the appends already
// queued, refuses new ones and closes the pool.
func (p *Postgres) Close() {
	p.once.Do(func() {
		p.stop()
		p.qmu.Lock()
		p.closed = true
		p.qmu.Unlock()
		close(p.closing)
		p.done.Wait()
		p.pool.Close()
	})
}

// migrate applies, in version order, the embedded migrations not yet recorded in
// pushwire_schema_migrations, each in its own transaction. It works on a connection of its
// own holding a session advisory lock, so concurrent servers apply each migration once; the
// lock goes with the connection even when an unlock would fail.
func migrate(ctx context.Context, cc *pgx.ConnConfig, opts PostgresOptions) error {
	type migration struct {
		version int
		name    string
	}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("history: migrate: %w", err)
	}
	var todo []migration
	seen := map[int]string{}
	for _, f := range files {
		name := strings.TrimPrefix(f, "migrations/")
		v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil || v <= 0 {
			return fmt.Errorf("history: migration %s: name does not start with a version number", name)
		}
		if other, dup := seen[v]; dup {
			return fmt.Errorf("history: migrations %s and %s share version %d", other, name, v)
		}
		seen[v] = name
		todo = append(todo, migration{v, f})
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].version < todo[j].version })

	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return fmt.Errorf("history: migrate: connect: %w", unavailable(ctx, err))
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), opts.QueryTimeout)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrationLock)); err != nil {
		return fmt.Errorf("history: migrate: lock: %w", unavailable(ctx, err))
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS pushwire_schema_migrations (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return fmt.Errorf("history: migrate: %w", unavailable(ctx, err))
	}
	applied := map[int]bool{}
	newest := 0
	rows, err := conn.Query(ctx, "SELECT version FROM pushwire_schema_migrations")
	if err != nil {
		return fmt.Errorf("history: migrate: %w", unavailable(ctx, err))
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("history: migrate: %w", unavailable(ctx, err))
		}
		applied[v], newest = true, max(newest, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("history: migrate: %w", unavailable(ctx, err))
	}
	for _, m := range todo {
		if applied[m.version] {
			continue
		}
		name := strings.TrimPrefix(m.name, "migrations/")
		sql, err := migrations.ReadFile(m.name)
		if err != nil {
			return fmt.Errorf("history: migration %s: %w", name, err)
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO pushwire_schema_migrations (version) VALUES ($1)", m.version)
			return err
		})
		if err != nil {
			return fmt.Errorf("history: migration %s: %w", name, unavailable(ctx, err))
		}
		opts.Logger.Info("history migration applied", zap.String("migration", name))
	}
	if last := todo[len(todo)-1].version; newest > last {
		opts.Logger.Warn("history schema is newer than this server", zap.Int("database_version", newest), zap.Int("server_version", last))
	}
	return nil
}

// unavailable marks connectivity failures with channels.ErrHistoryUnavailable: no server,
// a lost connection, a timeout, a closed pool, the server shutting down or refusing
// connections, the database gone. Errors Postgres reports about a statement (a constraint,
// a type) are returned as they are, and so is the cancellation of ctx, the caller's context.
func unavailable(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			strings.HasPrefix(pgErr.Code, "53"),  // insufficient resources (too many connections, disk full)
			strings.HasPrefix(pgErr.Code, "57P"), // admin or crash shutdown, cannot connect now
			pgErr.Code == "57014",                // statement cancelled (statement_timeout)
			pgErr.Code == "3D000":                // the database does not exist (dropped)
			return fmt.Errorf("%w: %w", channels.ErrHistoryUnavailable, err)
		}
		return err
	}
	return fmt.Errorf("%w: %w", channels.ErrHistoryUnavailable, err)
}

// appendSQL allocates the serial and stores the message in one statement: the upsert of the
// stream row takes its row lock until commit, so concurrent appends to a channel, from any
// node, are serialised and commit in serial order.
const appendSQL = `
WITH s AS (
    INSERT INTO pushwire_streams AS t (app_id, channel, stream_id, head_serial, total_bytes)
    VALUES ($1, $2, $3, 1, $12)
    ON CONFLICT (app_id, channel) DO UPDATE
        SET head_serial = t.head_serial + 1, total_bytes = t.total_bytes + excluded.total_bytes
    RETURNING head_serial, stream_id, total_bytes
)
INSERT INTO pushwire_messages (app_id, channel, serial, stream_id, event, data, name, user_id, tags,
                               message_id, extras, published_at_ms, size_bytes, cum_bytes, kind, mutable)
SELECT $1, $2, s.head_serial, s.stream_id, $4, $5, $6, $7, $8, $9, $10, $11, $12, s.total_bytes, $13, $14 FROM s
RETURNING serial, stream_id`

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// appendTo stores msg as the next message of its channel through q, setting its serial and
// stream id.
func (p *Postgres) appendTo(ctx context.Context, q querier, appID string, msg *protocol.Message) error {
	if msg.PublishedAtMs == 0 {
		msg.PublishedAtMs = p.opts.Now().UnixMilli()
	}
	var tags []byte
	if len(msg.Tags) > 0 {
		var err error
		if tags, err = json.Marshal(msg.Tags); err != nil {
			return fmt.Errorf("history: append %s: tags: %w", msg.Channel, err)
		}
	}
	data := msg.Data
	if data == nil {
		data = []byte{}
	}
	kind := 0
	if msg.Mutable != nil {
		kind = 1
		if msg.IsMutation() {
			kind = 2
		}
	}
	var serial int64
	var stream string
	err := q.QueryRow(ctx, appendSQL, appID, msg.Channel, protocol.NewUUID(), []byte(msg.Event), data,
		[]byte(msg.Name), []byte(msg.UserID), jsonParam(tags), []byte(msg.MessageID), nullBytes(msg.Extras),
		msg.PublishedAtMs, msgBytes(msg), kind, protocol.MarshalMutable(msg.Mutable)).Scan(&serial, &stream)
	if err != nil {
		return err
	}
	msg.Serial, msg.StreamID = uint64(serial), stream
	return nil
}

// jsonParam passes JSON text for a json column (NULL when empty).
func jsonParam(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

func nullBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// retainedFrom is the lateral subquery giving r.lo, the oldest retained serial of stream s
// (head+1 when none is): the first of its last @max serials published at or after @cutoff.
const retainedFrom = `
CROSS JOIN LATERAL (
    SELECT coalesce(min(k.serial), s.head_serial + 1) AS lo FROM pushwire_messages k
    WHERE k.app_id = s.app_id AND k.channel = s.channel
      AND k.serial > s.head_serial - @max AND k.published_at_ms >= @cutoff
) r`

var readSQL = [2]string{readQuery("DESC"), readQuery("ASC")}

// readQuery reads one page in the given serial order. The page is a LATERAL subquery with
// its own LIMIT, so Postgres runs it as one index range scan starting at the retained bound,
// whatever its statistics say.
func readQuery(order string) string {
	return `
SELECT m.serial, m.stream_id, m.event, m.data, m.name, m.user_id, m.tags, m.message_id, m.extras, m.published_at_ms, m.mutable
FROM pushwire_streams s` + retainedFrom + `
CROSS JOIN LATERAL (
    SELECT m.serial, m.stream_id, m.event, m.data, m.name, m.user_id, m.tags, m.message_id, m.extras, m.published_at_ms, m.mutable
    FROM pushwire_messages m
    WHERE m.app_id = s.app_id AND m.channel = s.channel
      AND m.serial >= greatest(r.lo, @start) AND m.serial <= @end
      AND m.published_at_ms BETWEEN @start_ms AND @end_ms AND m.kind <= @max_kind
    ORDER BY m.serial ` + order + `
    LIMIT @limit
) m
WHERE s.app_id = @app AND s.channel = @channel
ORDER BY m.serial ` + order
}

// Read implements channels.History.
func (p *Postgres) Read(ctx context.Context, appID, channel string, q protocol.HistoryQuery) (protocol.HistoryPage, error) {
	limit := q.Limit
	if limit <= 0 || limit > MaxReadLimit {
		limit = MaxReadLimit
	}
	if q.StartSerial > math.MaxInt64 || (q.EndSerial != 0 && q.EndSerial < q.StartSerial) {
		return protocol.HistoryPage{}, nil
	}
	end := int64(math.MaxInt64)
	if q.EndSerial != 0 && q.EndSerial < math.MaxInt64 {
		end = int64(q.EndSerial)
	}
	endMs := q.EndMs
	if endMs == 0 {
		endMs = math.MaxInt64
	}
	dir := 0
	if q.Direction == protocol.OldestFirst {
		dir = 1
	}
	maxKind := 2
	if q.MessagesOnly {
		maxKind = 1
	}
	qctx, cancel := context.WithTimeout(ctx, p.opts.QueryTimeout)
	defer cancel()
	rows, err := p.pool.Query(qctx, readSQL[dir], pgx.NamedArgs{
		"app": appID, "channel": channel, "max": p.opts.MaxMessagesPerChannel, "cutoff": p.cutoff(),
		"start": int64(q.StartSerial), "end": end, "start_ms": q.StartMs, "end_ms": endMs, "limit": limit + 1, "max_kind": maxKind,
	})
	if err != nil {
		return protocol.HistoryPage{}, fmt.Errorf("history: read %s: %w", channel, unavailable(ctx, err))
	}
	defer rows.Close()
	var page protocol.HistoryPage
	for rows.Next() {
		if len(page.Items) == limit {
			page.HasMore = true
			break
		}
		var m protocol.Message
		var serial int64
		var event, name, userID, messageID, tags, mutable []byte
		if err := rows.Scan(&serial, &m.StreamID, &event, &m.Data, &name, &userID, &tags, &messageID, &m.Extras, &m.PublishedAtMs, &mutable); err != nil {
			return protocol.HistoryPage{}, fmt.Errorf("history: read %s: %w", channel, unavailable(ctx, err))
		}
		if m.Mutable, err = protocol.UnmarshalMutable(mutable); err != nil {
			return protocol.HistoryPage{}, fmt.Errorf("history: read %s: serial %d: %w", channel, serial, err)
		}
		if m.Mutable != nil && m.Mutable.HistorySerial == 0 {
			m.Mutable.HistorySerial = uint64(serial) // a create: its own serial
		}
		m.Serial, m.Channel = uint64(serial), channel
		m.Event, m.Name, m.UserID, m.MessageID = string(event), string(name), string(userID), string(messageID)
		if len(tags) > 0 {
			if err := json.Unmarshal(tags, &m.Tags); err != nil {
				return protocol.HistoryPage{}, fmt.Errorf("history: read %s: serial %d: tags: %w", channel, serial, err)
			}
		}
		if len(m.Extras) == 0 {
			m.Extras = nil
		}
		page.Items = append(page.Items, m)
	}
	if err := rows.Err(); err != nil {
		return protocol.HistoryPage{}, fmt.Errorf("history: read %s: %w", channel, unavailable(ctx, err))
	}
	return page, nil
}

// stateSQL reads a stream's row and its oldest and newest (the head) retained messages;
// the retained count and size follow from their serials and cumulative byte positions.
const stateSQL = `
SELECT s.stream_id, s.head_serial, o.serial, o.published_at_ms, o.cum_bytes - o.size_bytes, n.published_at_ms, n.cum_bytes
FROM pushwire_streams s
LEFT JOIN LATERAL (
    SELECT k.serial, k.published_at_ms, k.cum_bytes, k.size_bytes FROM pushwire_messages k
    WHERE k.app_id = s.app_id AND k.channel = s.channel
      AND k.serial > s.head_serial - @max AND k.published_at_ms >= @cutoff
    ORDER BY k.serial LIMIT 1
) o ON true
LEFT JOIN LATERAL (
    SELECT k.published_at_ms, k.cum_bytes FROM pushwire_messages k
    WHERE k.app_id = s.app_id AND k.channel = s.channel AND k.serial <= s.head_serial
    ORDER BY k.serial DESC LIMIT 1
) n ON o.serial IS NOT NULL
WHERE s.app_id = @app AND s.channel = @channel`

// State implements channels.History.
func (p *Postgres) State(ctx context.Context, appID, channel string) (protocol.StreamState, error) {
	qctx, cancel := context.WithTimeout(ctx, p.opts.QueryTimeout)
	defer cancel()
	st, err := p.stateOn(qctx, p.pool, appID, channel)
	if err != nil {
		return protocol.StreamState{}, fmt.Errorf("history: state %s: %w", channel, unavailable(ctx, err))
	}
	return st, nil
}

// stateOn reads a stream's state through q (the pool or a transaction).
func (p *Postgres) stateOn(ctx context.Context, q querier, appID, channel string) (protocol.StreamState, error) {
	var st protocol.StreamState
	var head int64
	var oldest, oldestMs, before, newestMs, through *int64
	err := q.QueryRow(ctx, stateSQL, pgx.NamedArgs{
		"app": appID, "channel": channel, "max": p.opts.MaxMessagesPerChannel, "cutoff": p.cutoff(),
	}).Scan(&st.StreamID, &head, &oldest, &oldestMs, &before, &newestMs, &through)
	if errors.Is(err, pgx.ErrNoRows) {
		return protocol.StreamState{}, nil
	}
	if err != nil {
		return protocol.StreamState{}, err
	}
	st.HeadSerial = uint64(head)
	if oldest != nil && newestMs != nil {
		st.OldestSerial, st.OldestMs = uint64(*oldest), *oldestMs
		st.NewestSerial, st.NewestMs = uint64(head), *newestMs
		st.Retained = head - *oldest + 1
		st.RetainedBytes = *through - *before
	}
	return st, nil
}

// cutoff is the publish time (Unix ms) before which messages have expired.
func (p *Postgres) cutoff() int64 { return p.opts.Now().Add(-p.opts.MaxAge).UnixMilli() }

// trimCountSQL deletes one channel's serials up to $3 (its head less MaxMessagesPerChannel)
// in stream $4 (a reset since then started another, whose serials it must not touch): a
// primary-key range.
const trimCountSQL = `DELETE FROM pushwire_messages WHERE app_id = $1 AND channel = $2 AND serial <= $3 AND stream_id = $4`

// expiredSQL lists the channels of the oldest expired messages, in key order (every batch
// locks rows in that order, so concurrent trims cannot deadlock).
const expiredSQL = `
SELECT DISTINCT app_id, channel FROM (
    SELECT app_id, channel FROM pushwire_messages WHERE published_at_ms < $1 ORDER BY published_at_ms LIMIT $2
) e ORDER BY app_id, channel`

// trimAgeSQL deletes one channel's expired prefix: the serials before its first message
// published at or after the cutoff (all of them when there is none).
const trimAgeSQL = `
DELETE FROM pushwire_messages WHERE app_id = $1 AND channel = $2 AND serial < (
    SELECT coalesce(min(serial), 9223372036854775807) FROM pushwire_messages
    WHERE app_id = $1 AND channel = $2 AND published_at_ms >= $3)`

// Trim deletes what retention no longer keeps, always oldest first within a channel so
// the retained serials stay contiguous: the messages beyond the last MaxMessagesPerChannel
// of each channel this store appended to since the previous Trim, then every channel's
// messages published before MaxAge (one node at a time: a store finding another node's
// trim under way leaves the age pass to it). Batches are primary-key range deletes,
// pipelined, in transactions of their own, never in the append path. Reads and State apply
// retention themselves, so Trim only reclaims space; the retention loop calls it every
// RetentionInterval. It returns the number of messages deleted.
func (p *Postgres) Trim(ctx context.Context) (int64, error) {
	n, err := p.trimCount(ctx)
	if err != nil {
		return n, err
	}
	m, err := p.trimAge(ctx)
	if err != nil {
		return n + m, err
	}
	v, err := p.trimVersions(ctx)
	return n + m + v, err
}

// noteAppended records that a channel's head passed MaxMessagesPerChannel, for trimCount.
func (p *Postgres) noteAppended(appID, channel, stream string, head uint64) {
	if head <= uint64(p.opts.MaxMessagesPerChannel) {
		return
	}
	k := streamKey{appID, channel}
	p.dirtyMu.Lock()
	p.dirty[k] = p.dirty[k].later(streamMark{stream, head})
	p.dirtyMu.Unlock()
}

func (p *Postgres) trimCount(ctx context.Context) (int64, error) {
	p.dirtyMu.Lock()
	dirty := p.dirty
	p.dirty = map[streamKey]streamMark{}
	p.dirtyMu.Unlock()
	keys := make([]streamKey, 0, len(dirty))
	for k := range dirty {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].app != keys[j].app {
			return keys[i].app < keys[j].app
		}
		return keys[i].channel < keys[j].channel
	})
	var total int64
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), trimStreamBatch)]
		b := &pgx.Batch{}
		for _, k := range chunk {
			b.Queue(trimCountSQL, k.app, k.channel, int64(dirty[k].head)-int64(p.opts.MaxMessagesPerChannel), dirty[k].stream)
		}
		n, err := p.runBatch(ctx, nil, b)
		total += n
		if err != nil {
			// Keep what is left for the next run.
			p.dirtyMu.Lock()
			for _, k := range keys {
				p.dirty[k] = dirty[k].later(p.dirty[k])
			}
			p.dirtyMu.Unlock()
			return total, err
		}
		keys = keys[len(chunk):]
	}
	return total, nil
}

func (p *Postgres) trimAge(ctx context.Context) (int64, error) {
	var total int64
	for {
		var deleted int64
		qctx, cancel := context.WithTimeout(ctx, 10*p.opts.QueryTimeout)
		err := pgx.BeginFunc(qctx, p.pool, func(tx pgx.Tx) error {
			var locked bool
			if err := tx.QueryRow(qctx, "SELECT pg_try_advisory_xact_lock($1)", int64(retentionLock)).Scan(&locked); err != nil || !locked {
				return err
			}
			cutoff := p.cutoff()
			rows, err := tx.Query(qctx, expiredSQL, cutoff, trimAgeBatch)
			if err != nil {
				return err
			}
			b := &pgx.Batch{}
			for rows.Next() {
				var app, channel string
				if err := rows.Scan(&app, &channel); err != nil {
					rows.Close()
					return err
				}
				b.Queue(trimAgeSQL, app, channel, cutoff)
			}
			if rows.Close(); rows.Err() != nil {
				return rows.Err()
			}
			deleted, err = p.runBatch(qctx, tx, b)
			return err
		})
		cancel()
		total += deleted
		if err != nil {
			return total, fmt.Errorf("history: trim: %w", unavailable(ctx, err))
		}
		if deleted == 0 {
			return total, nil
		}
	}
}

// runBatch sends b, pipelined, on tx or else the pool (one implicit transaction), and sums
// the rows its statements affected.
func (p *Postgres) runBatch(ctx context.Context, tx pgx.Tx, b *pgx.Batch) (int64, error) {
	if b.Len() == 0 {
		return 0, nil
	}
	var br pgx.BatchResults
	if tx != nil {
		br = tx.SendBatch(ctx, b)
	} else {
		qctx, cancel := context.WithTimeout(ctx, 10*p.opts.QueryTimeout)
		defer cancel()
		br = p.pool.SendBatch(qctx, b)
	}
	var total int64
	for range b.Len() {
		tag, err := br.Exec()
		if err != nil {
			_ = br.Close()
			return total, fmt.Errorf("history: trim: %w", unavailable(ctx, err))
		}
		total += tag.RowsAffected()
	}
	if err := br.Close(); err != nil {
		return total, fmt.Errorf("history: trim: %w", unavailable(ctx, err))
	}
	return total, nil
}

func (p *Postgres) retentionLoop(ctx context.Context) {
	defer p.done.Done()
	t := time.NewTicker(p.opts.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := p.Trim(ctx)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				p.opts.Logger.Warn("history retention failed", zap.Error(err))
			case n > 0:
				p.opts.Logger.Debug("history retention", zap.Int64("deleted", n))
			}
		}
	}
}
