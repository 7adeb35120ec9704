package history

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/presencehistory"
	"github.com/pushwire/pushwire/protocol"
)

// The presence events of Postgres (presencehistory.Store), in the tables of migration 4.
// One AppendPresence is one transaction: per event, the member row (dropping a repeated
// edge), the stream row's upsert (its row lock orders the channel's events across nodes and
// allocates the serial) and the event row. Retention is applied by every read (the retained
// range is computed, not assumed trimmed) and physically every presenceTrimEvery serials.

// presenceTrimEvery is how often (in serials of a channel) an append deletes the events its
// retention no longer keeps.
const presenceTrimEvery = 64

var presenceKinds = map[channels.PresenceEventKind]int16{
	channels.PresenceMemberAdded: 1, channels.PresenceMemberUpdated: 2, channels.PresenceMemberRemoved: 3,
}

func presenceKind(k int16) channels.PresenceEventKind {
	for name, v := range presenceKinds {
		if v == k {
			return name
		}
	}
	return channels.PresenceEventKind(fmt.Sprintf("unknown_%d", k))
}

const presenceStreamSQL = `
INSERT INTO pushwire_presence_streams AS t (app_id, channel, stream_id, head_serial, total_bytes)
VALUES ($1, $2, $3, 1, 0)
ON CONFLICT (app_id, channel) DO UPDATE SET head_serial = t.head_serial + 1
RETURNING head_serial, stream_id`

const presenceInsertSQL = `
WITH s AS (
    UPDATE pushwire_presence_streams SET total_bytes = total_bytes + $11
    WHERE app_id = $1 AND channel = $2 RETURNING total_bytes
)
INSERT INTO pushwire_presence_events (app_id, channel, serial, stream_id, event, cause, user_id, connection_id,
                                      dead_node_id, published_at_ms, payload, cum_bytes)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $12, s.total_bytes FROM s`

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// AppendPresence implements presencehistory.Store.
func (p *Postgres) AppendPresence(ctx context.Context, appID, channel string, events []presencehistory.Event, r presencehistory.Retention) ([]presencehistory.Event, error) {
	qctx, cancel := context.WithTimeout(ctx, p.opts.QueryTimeout)
	defer cancel()
	var out []presencehistory.Event
	err := pgx.BeginFunc(qctx, p.pool, func(tx pgx.Tx) error {
		out = out[:0]
		for _, e := range events {
			var tag int64
			switch e.Event {
			case channels.PresenceMemberAdded:
				ct, err := tx.Exec(qctx, `INSERT INTO pushwire_presence_members (app_id, channel, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
					appID, channel, []byte(e.UserID))
				if err != nil {
					return err
				}
				tag = ct.RowsAffected()
			case channels.PresenceMemberRemoved:
				ct, err := tx.Exec(qctx, `DELETE FROM pushwire_presence_members WHERE app_id = $1 AND channel = $2 AND user_id = $3`,
					appID, channel, []byte(e.UserID))
				if err != nil {
					return err
				}
				tag = ct.RowsAffected()
			default:
				tag = 1
			}
			if tag == 0 {
				continue // the same change, reported again
			}
			var serial int64
			if err := tx.QueryRow(qctx, presenceStreamSQL, appID, channel, protocol.NewUUID()).Scan(&serial, &e.StreamID); err != nil {
				return err
			}
			e.Serial = uint64(serial)
			if e.PublishedAtMs == 0 {
				e.PublishedAtMs = p.opts.Now().UnixMilli()
			}
			e.UserInfo = append([]byte(nil), e.UserInfo...)
			e.Payload = presencehistory.EncodePayload(&e)
			if _, err := tx.Exec(qctx, presenceInsertSQL, appID, channel, serial, e.StreamID, presenceKinds[e.Event], string(e.Cause),
				[]byte(e.UserID), nullable(e.ConnectionID), nullable(e.DeadNodeID), e.PublishedAtMs, int64(len(e.Payload)), []byte(e.Payload)); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("history: presence append %s: %w", channel, unavailable(ctx, err))
	}
	if len(out) > 0 {
		last := out[len(out)-1].Serial
		if last/presenceTrimEvery != (last-uint64(len(out)))/presenceTrimEvery {
			p.trimPresence(ctx, appID, channel, r)
		}
	}
	return out, nil
}

// trimPresence deletes the channel's events that r no longer retains (best effort: reads
// apply r themselves).
func (p *Postgres) trimPresence(ctx context.Context, appID, channel string, r presencehistory.Retention) {
	qctx, cancel := context.WithTimeout(ctx, p.opts.QueryTimeout)
	defer cancel()
	st, err := p.presenceRetained(qctx, p.pool, appID, channel, r)
	if err != nil || st.StreamID == "" {
		return
	}
	oldest := st.NextSerial // nothing retained: everything goes
	if st.OldestSerial != 0 {
		oldest = st.OldestSerial
	}
	_, _ = p.pool.Exec(qctx, `DELETE FROM pushwire_presence_events WHERE app_id = $1 AND channel = $2 AND (stream_id <> $3 OR serial < $4)`,
		appID, channel, st.StreamID, int64(oldest))
}

// presenceRetainedSQL computes a stream's retained range under a retention: $3 the most
// events, $4 the most bytes, $5 the oldest published_at_ms kept.
const presenceRetainedSQL = `
WITH s AS (
    SELECT stream_id, head_serial, total_bytes FROM pushwire_presence_streams WHERE app_id = $1 AND channel = $2
), o AS (
    SELECT min(e.serial) AS serial FROM pushwire_presence_events e, s
    WHERE e.app_id = $1 AND e.channel = $2 AND e.stream_id = s.stream_id
      AND e.serial > s.head_serial - $3 AND e.cum_bytes > s.total_bytes - $4 AND e.published_at_ms >= $5
)
SELECT s.stream_id, s.head_serial, s.total_bytes, oe.serial, oe.published_at_ms, oe.cum_bytes - length(oe.payload), ne.published_at_ms
FROM s LEFT JOIN o ON true
LEFT JOIN pushwire_presence_events oe ON oe.app_id = $1 AND oe.channel = $2 AND oe.serial = o.serial AND oe.stream_id = s.stream_id
LEFT JOIN pushwire_presence_events ne ON ne.app_id = $1 AND ne.channel = $2 AND ne.serial = s.head_serial AND ne.stream_id = s.stream_id
      AND o.serial IS NOT NULL`

func (p *Postgres) presenceRetained(ctx context.Context, q querier, appID, channel string, r presencehistory.Retention) (presencehistory.Retained, error) {
	maxEvents, maxBytes, cutoff := int64(math.MaxInt64), int64(math.MaxInt64), int64(0)
	if r.MaxEvents > 0 {
		maxEvents = int64(r.MaxEvents)
	}
	if r.MaxBytes > 0 {
		maxBytes = r.MaxBytes
	}
	if r.Window > 0 {
		cutoff = p.opts.Now().UnixMilli() - r.Window.Milliseconds()
	}
	var (
		st                   presencehistory.Retained
		head, total          int64
		oldest, oldMs, below *int64
		newMs                *int64
	)
	err := q.QueryRow(ctx, presenceRetainedSQL, appID, channel, maxEvents, maxBytes, cutoff).
		Scan(&st.StreamID, &head, &total, &oldest, &oldMs, &below, &newMs)
	if errors.Is(err, pgx.ErrNoRows) {
		return presencehistory.Retained{NextSerial: 1}, nil
	}
	if err != nil {
		return st, err
	}
	st.NextSerial = uint64(head) + 1
	if oldest != nil && oldMs != nil && below != nil && newMs != nil {
		st.OldestSerial, st.OldestMs = uint64(*oldest), *oldMs
		st.NewestSerial, st.NewestMs = uint64(head), *newMs
		st.Events = head - *oldest + 1
		st.Bytes = total - *below
	}
	return st, nil
}

// ReadPresence implements presencehistory.Store.
func (p *Postgres) ReadPresence(ctx context.Context, appID, channel string, q presencehistory.Read) (presencehistory.Page, error) {
	qctx, cancel := context.WithTimeout(ctx, p.opts.QueryTimeout)
	defer cancel()
	var page presencehistory.Page
	err := pgx.BeginTxFunc(qctx, p.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		st, err := p.presenceRetained(qctx, tx, appID, channel, q.Retention)
		if err != nil {
			return err
		}
		page = presencehistory.Page{Retained: st}
		if st.OldestSerial == 0 {
			return nil
		}
		lo, hi := st.OldestSerial, st.NewestSerial
		if q.StartSerial > lo {
			lo = q.StartSerial
		}
		if q.EndSerial != 0 && q.EndSerial < hi {
			hi = q.EndSerial
		}
		if q.After != 0 {
			if q.Newest {
				hi = min(hi, q.After-1)
			} else {
				lo = max(lo, q.After+1)
			}
		}
		if lo > hi || hi == 0 {
			return nil
		}
		startMs, endMs := q.StartMs, q.EndMs
		if endMs == 0 {
			endMs = math.MaxInt64
		}
		order := "ASC"
		if q.Newest {
			order = "DESC"
		}
		rows, err := tx.Query(qctx, `SELECT serial, event, cause, user_id, connection_id, dead_node_id, published_at_ms, payload
FROM pushwire_presence_events
WHERE app_id = $1 AND channel = $2 AND stream_id = $3 AND serial BETWEEN $4 AND $5 AND published_at_ms BETWEEN $6 AND $7
ORDER BY serial `+order+` LIMIT $8`, appID, channel, st.StreamID, int64(lo), int64(hi), startMs, endMs, q.Limit+1)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				e          presencehistory.Event
				serial     int64
				kind       int16
				cause      string
				user       []byte
				conn, dead *string
				payload    []byte
			)
			if err := rows.Scan(&serial, &kind, &cause, &user, &conn, &dead, &e.PublishedAtMs, &payload); err != nil {
				return err
			}
			if len(page.Items) == q.Limit {
				page.HasMore = true
				break
			}
			e.StreamID, e.Serial, e.Event, e.Cause, e.UserID = st.StreamID, uint64(serial), presenceKind(kind), channels.PresenceCause(cause), string(user)
			if conn != nil {
				e.ConnectionID = *conn
			}
			if dead != nil {
				e.DeadNodeID = *dead
			}
			e.Payload = payload
			page.Items = append(page.Items, e)
		}
		return rows.Err()
	})
	if err != nil {
		return presencehistory.Page{}, fmt.Errorf("history: presence read %s: %w", channel, unavailable(ctx, err))
	}
	return page, nil
}

// PresenceStream implements presencehistory.Store.
func (p *Postgres) PresenceStream(ctx context.Context, appID, channel string, r presencehistory.Retention) (presencehistory.Retained, error) {
	qctx, cancel := context.WithTimeout(ctx, p.opts.QueryTimeout)
	defer cancel()
	st, err := p.presenceRetained(qctx, p.pool, appID, channel, r)
	if err != nil {
		return st, fmt.Errorf("history: presence state %s: %w", channel, unavailable(ctx, err))
	}
	return st, nil
}

// ResetPresence implements presencehistory.Store.
func (p *Postgres) ResetPresence(ctx context.Context, appID, channel string) (presencehistory.Retained, presencehistory.Retained, error) {
	qctx, cancel := context.WithTimeout(ctx, p.opts.QueryTimeout)
	defer cancel()
	var before, after presencehistory.Retained
	err := pgx.BeginFunc(qctx, p.pool, func(tx pgx.Tx) error {
		// Lock the stream row first, so appends racing the reset land before it or after.
		if _, err := tx.Exec(qctx, `SELECT 1 FROM pushwire_presence_streams WHERE app_id = $1 AND channel = $2 FOR UPDATE`, appID, channel); err != nil {
			return err
		}
		var err error
		if before, err = p.presenceRetained(qctx, tx, appID, channel, presencehistory.Retention{}); err != nil {
			return err
		}
		id := protocol.NewUUID()
		if _, err := tx.Exec(qctx, `INSERT INTO pushwire_presence_streams (app_id, channel, stream_id, head_serial, total_bytes) VALUES ($1, $2, $3, 0, 0)
ON CONFLICT (app_id, channel) DO UPDATE SET stream_id = excluded.stream_id, head_serial = 0, total_bytes = 0`, appID, channel, id); err != nil {
			return err
		}
		for _, q := range []string{`DELETE FROM pushwire_presence_events WHERE app_id = $1 AND channel = $2`,
			`DELETE FROM pushwire_presence_members WHERE app_id = $1 AND channel = $2`} {
			if _, err := tx.Exec(qctx, q, appID, channel); err != nil {
				return err
			}
		}
		after = presencehistory.Retained{StreamID: id, NextSerial: 1}
		return nil
	})
	if err != nil {
		return before, after, fmt.Errorf("history: presence reset %s: %w", channel, unavailable(ctx, err))
	}
	return before, after, nil
}

// PresenceSource implements presencehistory.Store.
func (p *Postgres) PresenceSource() string { return "postgres" }
