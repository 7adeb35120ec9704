package history

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// Locks of a reset, in the order every writer takes them (Mutate: a message's aggregate,
// then the stream row through its append; Append and Create: the stream row), so a reset
// never deadlocks with them: the channel's aggregates first, then its stream row.
const (
	lockAggregatesSQL = `SELECT 1 FROM pushwire_versioned_messages WHERE app_id = $1 AND channel = $2 FOR UPDATE`
	lockStreamSQL     = `SELECT head_serial FROM pushwire_streams WHERE app_id = $1 AND channel = $2 FOR UPDATE`
)

// purgedSQL deletes the channel's messages of stream $5 below a serial and sums the retained
// ones among them (serial at or above $4, the oldest retained before the purge).
const purgedSQL = `
WITH gone AS (
    DELETE FROM pushwire_messages WHERE app_id = $1 AND channel = $2 AND serial < $3 AND stream_id = $5
    RETURNING serial, size_bytes
)
SELECT count(*) FILTER (WHERE serial >= $4), coalesce(sum(size_bytes) FILTER (WHERE serial >= $4), 0) FROM gone`

// Reset implements channels.HistoryAdmin: in one transaction, the channel's messages, mutable
// messages and versions are deleted and its stream row gets a new stream id and head 0, so
// the next append, from any node, is serial 1 of the new stream.
func (p *Postgres) Reset(ctx context.Context, appID, channel string) (channels.HistoryReset, error) {
	qctx, cancel := context.WithTimeout(ctx, 10*p.opts.QueryTimeout)
	defer cancel()
	var res channels.HistoryReset
	err := pgx.BeginFunc(qctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(qctx, lockAggregatesSQL, appID, channel); err != nil {
			return err
		}
		if _, err := tx.Exec(qctx, lockStreamSQL, appID, channel); err != nil {
			return err
		}
		before, err := p.stateOn(qctx, tx, appID, channel)
		if err != nil {
			return err
		}
		if err := tx.QueryRow(qctx, purgedSQL, appID, channel, int64(before.HeadSerial)+1, int64(oldestRetained(before)), before.StreamID).
			Scan(&res.PurgedMessages, &res.PurgedBytes); err != nil {
			return err
		}
		if err := deleteVersionsBelow(qctx, tx, appID, channel, "", -1); err != nil {
			return err
		}
		// Rows of the old stream that were past its head (none: serials are allocated with
		// the row) or of an older stream are gone with the rest.
		if _, err := tx.Exec(qctx, `DELETE FROM pushwire_messages WHERE app_id = $1 AND channel = $2`, appID, channel); err != nil {
			return err
		}
		res.PreviousStreamID, res.NewStreamID = before.StreamID, protocol.NewUUID()
		if _, err := tx.Exec(qctx, `INSERT INTO pushwire_streams AS t (app_id, channel, stream_id, head_serial, total_bytes)
VALUES ($1, $2, $3, 0, 0)
ON CONFLICT (app_id, channel) DO UPDATE SET stream_id = excluded.stream_id, head_serial = 0, total_bytes = 0`,
			appID, channel, res.NewStreamID); err != nil {
			return err
		}
		res.State, err = p.stateOn(qctx, tx, appID, channel)
		return err
	})
	if err != nil {
		return channels.HistoryReset{}, fmt.Errorf("history: reset %s: %w", channel, unavailable(ctx, err))
	}
	p.dirtyMu.Lock()
	delete(p.dirty, streamKey{appID, channel})
	p.dirtyMu.Unlock()
	return res, nil
}

// Purge implements channels.HistoryAdmin: in one transaction, the channel's messages below
// the cut and the mutable messages they created are deleted. The cut is the head + 1 (all),
// BeforeSerial (at most the head + 1), or the first retained message published at or after
// BeforeMs, so the messages kept stay a contiguous run of serials ending at the head.
// Appends go on meanwhile: they are above the cut.
func (p *Postgres) Purge(ctx context.Context, appID, channel string, req channels.PurgeRequest) (channels.HistoryPurge, error) {
	qctx, cancel := context.WithTimeout(ctx, 10*p.opts.QueryTimeout)
	defer cancel()
	var res channels.HistoryPurge
	err := pgx.BeginFunc(qctx, p.pool, func(tx pgx.Tx) error {
		before, err := p.stateOn(qctx, tx, appID, channel)
		if err != nil {
			return err
		}
		oldest := oldestRetained(before)
		cut := before.HeadSerial + 1
		switch req.Mode {
		case channels.PurgeBeforeSerial:
			cut = min(cut, req.BeforeSerial)
		case channels.PurgeBeforeTime:
			var first *int64
			if err := tx.QueryRow(qctx, `SELECT min(serial) FROM pushwire_messages
WHERE app_id = $1 AND channel = $2 AND serial >= $3 AND serial <= $4 AND published_at_ms >= $5`,
				appID, channel, int64(oldest), int64(before.HeadSerial), req.BeforeMs).Scan(&first); err != nil {
				return err
			}
			if first != nil {
				cut = uint64(*first)
			}
		}
		res.Cut = max(cut, 1)
		if err := tx.QueryRow(qctx, purgedSQL, appID, channel, int64(res.Cut), int64(oldest), before.StreamID).
			Scan(&res.PurgedMessages, &res.PurgedBytes); err != nil {
			return err
		}
		if err := deleteVersionsBelow(qctx, tx, appID, channel, before.StreamID, int64(res.Cut)); err != nil {
			return err
		}
		res.State, err = p.stateOn(qctx, tx, appID, channel)
		return err
	})
	if err != nil {
		return channels.HistoryPurge{}, fmt.Errorf("history: purge %s: %w", channel, unavailable(ctx, err))
	}
	return res, nil
}

// oldestRetained is the first retained serial of st (its head + 1 when none is retained).
func oldestRetained(st protocol.StreamState) uint64 {
	if st.Retained == 0 {
		return st.HeadSerial + 1
	}
	return st.OldestSerial
}

// deleteVersionsBelow deletes the channel's mutable messages of stream created below serial
// cut (all of them when cut < 0), then their versions: a mutation committing meanwhile holds
// its message's row, so the first statement waits for it and the second sees its version.
// A stream the channel no longer has (a reset from another node came first) is left alone.
func deleteVersionsBelow(ctx context.Context, tx pgx.Tx, appID, channel, stream string, cut int64) error {
	if _, err := tx.Exec(ctx, `DELETE FROM pushwire_versioned_messages
WHERE app_id = $1 AND channel = $2 AND ($3 < 0 OR (history_serial < $3 AND stream_id = $4))`, appID, channel, cut, stream); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `DELETE FROM pushwire_message_versions
WHERE app_id = $1 AND channel = $2 AND ($3 < 0 OR (history_serial < $3 AND stream_id = $4))`, appID, channel, cut, stream)
	return err
}
