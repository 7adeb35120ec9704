package history

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
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
	// QueryTimeout bounds every statement. Default 5s.
	QueryTimeout time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives retention and migration logs. Default: none.
	Logger *zap.Logger
}

// DefaultPostgresMessages is the default per-channel bound of the Postgres store.
const DefaultPostgresMessages = 10000

// Postgres is a durable history store shared by every node using the same database. Serials
// are allocated in the statement that stores the message, so nodes never repeat one.
type Postgres struct {
	pool *pgxpool.Pool
	opts PostgresOptions
	stop chan struct{}
	done sync.WaitGroup
	once sync.Once
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
		opts.RetentionInterval = time.Minute
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 5 * time.Second
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
	cfg.ConnConfig.ConnectTimeout = opts.QueryTimeout
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("history: connect: %w", err)
	}
	p := &Postgres{pool: pool, opts: opts, stop: make(chan struct{})}
	if err := p.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	p.done.Add(1)
	go p.retentionLoop()
	return p, nil
}

// Close stops the retention loop and closes the pool.
func (p *Postgres) Close() {
	p.once.Do(func() {
		close(p.stop)
		p.done.Wait()
		p.pool.Close()
	})
}

// migrate applies the embedded migrations not yet recorded in pushwire_schema_migrations.
func (p *Postgres) migrate(ctx context.Context) error {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("history: migrate: %w", unavailable(err))
	}
	defer conn.Release()
	const lock = 7_231_845_120 // pg_advisory_lock key of pushwire migrations
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lock); err != nil {
		return fmt.Errorf("history: migrate: lock: %w", err)
	}
	defer func() { _, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", lock) }()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS pushwire_schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("history: migrate: %w", err)
	}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, f := range files {
		base := strings.TrimPrefix(f, "migrations/")
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("history: migration %s: bad version", base)
		}
		var done bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pushwire_schema_migrations WHERE version = $1)", v).Scan(&done); err != nil {
			return fmt.Errorf("history: migrate: %w", err)
		}
		if done {
			continue
		}
		sql, _ := migrations.ReadFile(f)
		tx, err := conn.Begin(ctx)
		if err != nil {
			return fmt.Errorf("history: migrate: %w", err)
		}
		if _, err := tx.Exec(ctx, string(sql)); err != nil {
			_ = tx.Rollback(ctx)
			return fmt.Errorf("history: migration %s: %w", base, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO pushwire_schema_migrations (version) VALUES ($1)", v); err != nil {
			_ = tx.Rollback(ctx)
			return fmt.Errorf("history: migration %s: %w", base, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("history: migration %s: %w", base, err)
		}
		p.opts.Logger.Info("history migration applied", zap.String("migration", base))
	}
	return nil
}

// unavailable marks connectivity failures (no server, connection lost, timeouts, the
// server shutting down) with channels.ErrHistoryUnavailable.
func unavailable(err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P") || pgErr.Code == "3D000" {
			return fmt.Errorf("%w: %w", channels.ErrHistoryUnavailable, err)
		}
		return err
	}
	// Anything else (no server, connection lost, a timeout, a closed pool) is the store
	// being unreachable.
	return fmt.Errorf("%w: %w", channels.ErrHistoryUnavailable, err)
}

const appendSQL = `
WITH s AS (
    INSERT INTO pushwire_streams AS t (app_id, channel, stream_id, head_serial) VALUES ($1, $2, $3, 1)
    ON CONFLICT (app_id, channel) DO UPDATE SET head_serial = t.head_serial + 1
    RETURNING head_serial, stream_id
)
INSERT INTO pushwire_messages (app_id, channel, serial, stream_id, event, data, name, user_id, tags, message_id, extras, published_at_ms, size_bytes)
SELECT $1, $2, s.head_serial, s.stream_id, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM s
RETURNING serial, stream_id`

// Append implements channels.History.
func (p *Postgres) Append(ctx context.Context, appID string, msg *protocol.Message) error {
	if msg.PublishedAtMs == 0 {
		msg.PublishedAtMs = p.opts.Now().UnixMilli()
	}
	var tags []byte
	if len(msg.Tags) > 0 {
		tags, _ = json.Marshal(msg.Tags)
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.QueryTimeout)
	defer cancel()
	var serial int64
	var stream string
	err := p.pool.QueryRow(ctx, appendSQL, appID, msg.Channel, protocol.NewUUID(), msg.Event, msg.Data, msg.Name, msg.UserID,
		tags, msg.MessageID, nullBytes(msg.Extras), msg.PublishedAtMs, msgBytes(msg)).Scan(&serial, &stream)
	if err != nil {
		return fmt.Errorf("history: append %s: %w", msg.Channel, unavailable(err))
	}
	msg.Serial, msg.StreamID = uint64(serial), stream
	return nil
}

func nullBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// Read implements channels.History.
func (p *Postgres) Read(ctx context.Context, appID, channel string, q protocol.HistoryQuery) (protocol.HistoryPage, error) {
	limit := q.Limit
	if limit <= 0 || limit > MaxReadLimit {
		limit = MaxReadLimit
	}
	start, end := int64(q.StartSerial), int64(q.EndSerial)
	if q.StartSerial > 1<<62 {
		return protocol.HistoryPage{}, nil
	}
	if q.EndSerial == 0 {
		end = 1<<63 - 1
	}
	startMs, endMs := q.StartMs, q.EndMs
	if endMs == 0 {
		endMs = 1<<63 - 1
	}
	order := "DESC"
	if q.Direction == protocol.OldestFirst {
		order = "ASC"
	}
	cutoff := p.opts.Now().Add(-p.opts.MaxAge).UnixMilli()
	if startMs < cutoff {
		startMs = cutoff
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.QueryTimeout)
	defer cancel()
	rows, err := p.pool.Query(ctx, `SELECT serial, stream_id, event, data, name, user_id, tags, message_id, extras, published_at_ms
FROM pushwire_messages WHERE app_id = $1 AND channel = $2 AND serial BETWEEN $3 AND $4 AND published_at_ms BETWEEN $5 AND $6
ORDER BY serial `+order+` LIMIT $7`, appID, channel, start, end, startMs, endMs, limit+1)
	if err != nil {
		return protocol.HistoryPage{}, fmt.Errorf("history: read %s: %w", channel, unavailable(err))
	}
	defer rows.Close()
	var page protocol.HistoryPage
	for rows.Next() {
		var m protocol.Message
		var serial int64
		var tags []byte
		if err := rows.Scan(&serial, &m.StreamID, &m.Event, &m.Data, &m.Name, &m.UserID, &tags, &m.MessageID, &m.Extras, &m.PublishedAtMs); err != nil {
			return protocol.HistoryPage{}, fmt.Errorf("history: read %s: %w", channel, unavailable(err))
		}
		m.Serial, m.Channel = uint64(serial), channel
		if len(tags) > 0 {
			_ = json.Unmarshal(tags, &m.Tags)
		}
		if len(m.Extras) == 0 {
			m.Extras = nil
		}
		if len(page.Items) == limit {
			page.HasMore = true
			break
		}
		page.Items = append(page.Items, m)
	}
	if err := rows.Err(); err != nil {
		return protocol.HistoryPage{}, fmt.Errorf("history: read %s: %w", channel, unavailable(err))
	}
	return page, nil
}

// State implements channels.History.
func (p *Postgres) State(ctx context.Context, appID, channel string) (protocol.StreamState, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.QueryTimeout)
	defer cancel()
	var st protocol.StreamState
	var head int64
	err := p.pool.QueryRow(ctx, "SELECT stream_id, head_serial FROM pushwire_streams WHERE app_id = $1 AND channel = $2", appID, channel).Scan(&st.StreamID, &head)
	if errors.Is(err, pgx.ErrNoRows) {
		return protocol.StreamState{}, nil
	}
	if err != nil {
		return st, fmt.Errorf("history: state %s: %w", channel, unavailable(err))
	}
	st.HeadSerial = uint64(head)
	cutoff := p.opts.Now().Add(-p.opts.MaxAge).UnixMilli()
	var oldest, newest *int64
	err = p.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(size_bytes), 0), min(serial), max(serial) FROM pushwire_messages
WHERE app_id = $1 AND channel = $2 AND published_at_ms >= $3`, appID, channel, cutoff).Scan(&st.Retained, &st.RetainedBytes, &oldest, &newest)
	if err != nil {
		return st, fmt.Errorf("history: state %s: %w", channel, unavailable(err))
	}
	if oldest != nil && newest != nil {
		st.OldestSerial, st.NewestSerial = uint64(*oldest), uint64(*newest)
		err = p.pool.QueryRow(ctx, `SELECT (SELECT published_at_ms FROM pushwire_messages WHERE app_id = $1 AND channel = $2 AND serial = $3),
(SELECT published_at_ms FROM pushwire_messages WHERE app_id = $1 AND channel = $2 AND serial = $4)`, appID, channel, *oldest, *newest).Scan(&st.OldestMs, &st.NewestMs)
		if err != nil {
			return st, fmt.Errorf("history: state %s: %w", channel, unavailable(err))
		}
	}
	return st, nil
}

// Trim applies retention now: messages past MaxAge, and those beyond MaxMessagesPerChannel
// of each channel, in batches. The retention loop calls it every RetentionInterval.
func (p *Postgres) Trim(ctx context.Context) (int64, error) {
	var total int64
	cutoff := p.opts.Now().Add(-p.opts.MaxAge).UnixMilli()
	for {
		tag, err := p.pool.Exec(ctx, `DELETE FROM pushwire_messages WHERE ctid IN (SELECT ctid FROM pushwire_messages WHERE published_at_ms < $1 LIMIT 5000)`, cutoff)
		if err != nil {
			return total, fmt.Errorf("history: trim: %w", unavailable(err))
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 5000 {
			break
		}
	}
	tag, err := p.pool.Exec(ctx, `DELETE FROM pushwire_messages m USING pushwire_streams s
WHERE m.app_id = s.app_id AND m.channel = s.channel AND m.serial <= s.head_serial - $1`, p.opts.MaxMessagesPerChannel)
	if err != nil {
		return total, fmt.Errorf("history: trim: %w", unavailable(err))
	}
	return total + tag.RowsAffected(), nil
}

func (p *Postgres) retentionLoop() {
	defer p.done.Done()
	t := time.NewTicker(p.opts.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*p.opts.QueryTimeout)
			n, err := p.Trim(ctx)
			cancel()
			if err != nil {
				p.opts.Logger.Warn("history retention failed", zap.Error(err))
			} else if n > 0 {
				p.opts.Logger.Debug("history retention", zap.Int64("deleted", n))
			}
		}
	}
}
