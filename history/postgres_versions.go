package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

const aggregateColumns = `message_serial, history_serial, stream_id, event, data, extras, tags, user_id, original_client_id,
    latest_action, latest_version_serial, latest_version_ms, latest_client_id, latest_description, latest_metadata,
    latest_delivery_serial, latest_message_id, created_at_ms`

const insertAggregateSQL = `INSERT INTO pushwire_versioned_messages (app_id, channel, ` + aggregateColumns + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`

const updateAggregateSQL = `UPDATE pushwire_versioned_messages SET event = $4, data = $5, extras = $6, user_id = $7,
    latest_action = $8, latest_version_serial = $9, latest_version_ms = $10, latest_client_id = $11,
    latest_description = $12, latest_metadata = $13, latest_delivery_serial = $14, latest_message_id = $15
WHERE app_id = $1 AND channel = $2 AND message_serial = $3`

const versionColumns = `message_serial, version_serial, delivery_serial, history_serial, action, event, data, extras,
    client_id, description, metadata, timestamp_ms, message_id, stream_id, op_key, fingerprint`

const insertVersionSQL = `INSERT INTO pushwire_message_versions (app_id, channel, ` + versionColumns + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`

// Create implements channels.Versions: the stream append, the aggregate and the first
// version commit in one transaction.
func (p *Postgres) Create(ctx context.Context, appID string, msg *protocol.Message, agg protocol.VersionedMessage) error {
	if msg.Mutable == nil {
		return fmt.Errorf("history: create %s: message is not mutable", msg.Channel)
	}
	qctx, cancel := context.WithTimeout(ctx, p.opts.QueryTimeout)
	defer cancel()
	err := pgx.BeginFunc(qctx, p.pool, func(tx pgx.Tx) error {
		if err := p.appendTo(qctx, tx, appID, msg); err != nil {
			return err
		}
		msg.Mutable.HistorySerial = msg.Serial
		agg.HistorySerial, agg.StreamID, agg.LatestDeliverySerial = msg.Serial, msg.StreamID, msg.Serial
		agg.LatestMessageID, agg.LatestAction = msg.MessageID, protocol.ActionCreate
		if err := insertAggregate(qctx, tx, appID, agg); err != nil {
			return err
		}
		return insertVersion(qctx, tx, appID, agg.Channel, protocol.MessageVersion{
			MessageSerial: agg.MessageSerial, HistorySerial: msg.Serial, DeliverySerial: msg.Serial, Action: protocol.ActionCreate,
			Event: agg.Event, Data: agg.Data, Extras: agg.Extras, Version: agg.LatestVersion, MessageID: msg.MessageID, StreamID: msg.StreamID,
		})
	})
	if err != nil {
		msg.Serial, msg.StreamID = 0, ""
		return fmt.Errorf("history: create %s: %w", msg.Channel, unavailable(ctx, err))
	}
	p.noteAppended(appID, msg.Channel, msg.StreamID, msg.Serial)
	return nil
}

// Mutate implements channels.Versions. The aggregate row's lock (FOR UPDATE) orders the
// mutations of one message across nodes; the stream row's lock, taken by the append,
// orders the channel's serials. Locks are always taken in that order.
func (p *Postgres) Mutate(ctx context.Context, appID, channel, serial, opKey, fingerprint string,
	plan func(protocol.VersionedMessage) (protocol.MutationPlan, error)) (protocol.MutationPlan, bool, error) {
	qctx, cancel := context.WithTimeout(ctx, p.opts.QueryTimeout)
	defer cancel()
	var res protocol.MutationPlan
	var dup bool
	var planErr error
	err := pgx.BeginFunc(qctx, p.pool, func(tx pgx.Tx) error {
		cur, err := scanAggregate(tx.QueryRow(qctx, `SELECT `+aggregateColumns+` FROM pushwire_versioned_messages
WHERE app_id = $1 AND channel = $2 AND message_serial = $3 AND latest_version_ms >= $4 FOR UPDATE`, appID, channel, serial, p.cutoff()), channel)
		if err != nil {
			return err
		}
		if opKey != "" {
			rows, err := tx.Query(qctx, `SELECT `+versionColumns+` FROM pushwire_message_versions
WHERE app_id = $1 AND channel = $2 AND op_key = $3`, appID, channel, opKey)
			if err != nil {
				return err
			}
			prev, err := scanVersions(rows)
			if err != nil {
				return err
			}
			if len(prev) > 0 {
				if prev[0].Fingerprint != fingerprint {
					return channels.ErrOperationConflict
				}
				res, dup = protocol.MutationPlan{Next: cur, Version: prev[0]}, true
				return nil
			}
		}
		res, planErr = plan(cur)
		if planErr != nil {
			return planErr
		}
		if err := p.appendTo(qctx, tx, appID, res.Delivery); err != nil {
			return err
		}
		d := res.Delivery
		res.Next.LatestDeliverySerial, res.Next.StreamID, res.Next.LatestMessageID = d.Serial, d.StreamID, d.MessageID
		res.Version.DeliverySerial, res.Version.StreamID, res.Version.MessageID = d.Serial, d.StreamID, d.MessageID
		res.Version.OpKey, res.Version.Fingerprint = opKey, fingerprint
		if err := insertVersion(qctx, tx, appID, channel, res.Version); err != nil {
			return err
		}
		n := res.Next
		v := n.LatestVersion
		_, err = tx.Exec(qctx, updateAggregateSQL, appID, channel, serial, []byte(n.Event), n.Data, nullBytes(n.Extras), []byte(n.UserID),
			string(n.LatestAction), v.Serial, v.TimestampMs, []byte(v.ClientID), []byte(v.Description), nullBytes(v.Metadata),
			int64(n.LatestDeliverySerial), n.LatestMessageID)
		return err
	})
	switch {
	case planErr != nil:
		return protocol.MutationPlan{}, false, planErr
	case errors.Is(err, channels.ErrMessageNotFound), errors.Is(err, channels.ErrOperationConflict):
		return protocol.MutationPlan{}, false, err
	case err != nil:
		if res.Delivery != nil {
			res.Delivery.Serial, res.Delivery.StreamID = 0, ""
		}
		return protocol.MutationPlan{}, false, fmt.Errorf("history: mutate %s %s: %w", channel, serial, unavailable(ctx, err))
	}
	if !dup {
		p.noteAppended(appID, channel, res.Delivery.StreamID, res.Delivery.Serial)
	}
	return res, dup, nil
}

// Message implements channels.Versions.
func (p *Postgres) Message(ctx context.Context, appID, channel, serial string) (protocol.VersionedMessage, error) {
	qctx, cancel := context.WithTimeout(ctx, p.opts.QueryTimeout)
	defer cancel()
	agg, err := scanAggregate(p.pool.QueryRow(qctx, `SELECT `+aggregateColumns+` FROM pushwire_versioned_messages
WHERE app_id = $1 AND channel = $2 AND message_serial = $3 AND latest_version_ms >= $4`, appID, channel, serial, p.cutoff()), channel)
	if err != nil && !errors.Is(err, channels.ErrMessageNotFound) {
		err = fmt.Errorf("history: message %s %s: %w", channel, serial, unavailable(ctx, err))
	}
	return agg, err
}

// Latest implements channels.Versions.
func (p *Postgres) Latest(ctx context.Context, appID, channel string, serials []string) (map[string]protocol.VersionedMessage, error) {
	out := map[string]protocol.VersionedMessage{}
	if len(serials) == 0 {
		return out, nil
	}
	qctx, cancel := context.WithTimeout(ctx, p.opts.QueryTimeout)
	defer cancel()
	rows, err := p.pool.Query(qctx, `SELECT `+aggregateColumns+` FROM pushwire_versioned_messages
WHERE app_id = $1 AND channel = $2 AND message_serial = ANY($3) AND latest_version_ms >= $4`, appID, channel, serials, p.cutoff())
	if err != nil {
		return nil, fmt.Errorf("history: latest %s: %w", channel, unavailable(ctx, err))
	}
	defer rows.Close()
	for rows.Next() {
		agg, err := scanAggregate(rows, channel)
		if err != nil {
			return nil, fmt.Errorf("history: latest %s: %w", channel, unavailable(ctx, err))
		}
		out[agg.MessageSerial] = agg
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history: latest %s: %w", channel, unavailable(ctx, err))
	}
	return out, nil
}

// ReadVersions implements channels.Versions.
func (p *Postgres) ReadVersions(ctx context.Context, appID, channel, serial string, q channels.VersionQuery) ([]protocol.MessageVersion, bool, error) {
	limit := q.Limit
	if limit <= 0 || limit > MaxReadLimit {
		limit = MaxReadLimit
	}
	qctx, cancel := context.WithTimeout(ctx, p.opts.QueryTimeout)
	defer cancel()
	var exists bool
	if err := p.pool.QueryRow(qctx, `SELECT EXISTS (SELECT 1 FROM pushwire_versioned_messages
WHERE app_id = $1 AND channel = $2 AND message_serial = $3 AND latest_version_ms >= $4)`, appID, channel, serial, p.cutoff()).Scan(&exists); err != nil {
		return nil, false, fmt.Errorf("history: versions %s %s: %w", channel, serial, unavailable(ctx, err))
	}
	if !exists {
		return nil, false, channels.ErrMessageNotFound
	}
	cmp, order := ">", "ASC"
	if q.Direction != protocol.OldestFirst {
		cmp, order = "<", "DESC"
	}
	rows, err := p.pool.Query(qctx, `SELECT `+versionColumns+` FROM pushwire_message_versions
WHERE app_id = $1 AND channel = $2 AND message_serial = $3 AND ($4 = '' OR version_serial `+cmp+` $4)
ORDER BY version_serial `+order+` LIMIT $5`, appID, channel, serial, q.After, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("history: versions %s %s: %w", channel, serial, unavailable(ctx, err))
	}
	vs, err := scanVersions(rows)
	if err != nil {
		return nil, false, fmt.Errorf("history: versions %s %s: %w", channel, serial, unavailable(ctx, err))
	}
	more := len(vs) > limit
	if more {
		vs = vs[:limit]
	}
	return vs, more, nil
}

func insertAggregate(ctx context.Context, tx pgx.Tx, appID string, a protocol.VersionedMessage) error {
	var tags []byte
	if len(a.Tags) > 0 {
		tags, _ = json.Marshal(a.Tags)
	}
	_, err := tx.Exec(ctx, insertAggregateSQL, aggregateArgs(appID, a, tags)...)
	return err
}

// aggregateArgs are insertAggregateSQL's arguments.
func aggregateArgs(appID string, a protocol.VersionedMessage, tags []byte) []any {
	v := a.LatestVersion
	return []any{appID, a.Channel, a.MessageSerial, int64(a.HistorySerial), a.StreamID,
		[]byte(a.Event), a.Data, nullBytes(a.Extras), jsonParam(tags), []byte(a.UserID), []byte(a.OriginalClientID),
		string(a.LatestAction), v.Serial, v.TimestampMs, []byte(v.ClientID), []byte(v.Description), nullBytes(v.Metadata),
		int64(a.LatestDeliverySerial), a.LatestMessageID, a.CreatedAtMs}
}

func insertVersion(ctx context.Context, tx pgx.Tx, appID, channel string, v protocol.MessageVersion) error {
	var opKey, fp any
	if v.OpKey != "" {
		opKey, fp = v.OpKey, v.Fingerprint
	}
	_, err := tx.Exec(ctx, insertVersionSQL, versionArgs(appID, channel, v, opKey, fp)...)
	return err
}

// versionArgs are insertVersionSQL's arguments.
func versionArgs(appID, channel string, v protocol.MessageVersion, opKey, fp any) []any {
	return []any{appID, channel, v.MessageSerial, v.Version.Serial, int64(v.DeliverySerial),
		int64(v.HistorySerial), string(v.Action), []byte(v.Event), v.Data, nullBytes(v.Extras), []byte(v.Version.ClientID),
		[]byte(v.Version.Description), nullBytes(v.Version.Metadata), v.Version.TimestampMs, v.MessageID, v.StreamID, opKey, fp}
}

func scanAggregate(row pgx.Row, channel string) (protocol.VersionedMessage, error) {
	a := protocol.VersionedMessage{Channel: channel}
	var hist, delivery int64
	var event, tags, userID, origClient, client, desc []byte
	var action string
	err := row.Scan(&a.MessageSerial, &hist, &a.StreamID, &event, &a.Data, &a.Extras, &tags, &userID, &origClient,
		&action, &a.LatestVersion.Serial, &a.LatestVersion.TimestampMs, &client, &desc, &a.LatestVersion.Metadata,
		&delivery, &a.LatestMessageID, &a.CreatedAtMs)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, channels.ErrMessageNotFound
	}
	if err != nil {
		return a, err
	}
	a.HistorySerial, a.LatestDeliverySerial, a.LatestAction = uint64(hist), uint64(delivery), protocol.Action(action)
	a.Event, a.UserID, a.OriginalClientID = string(event), string(userID), string(origClient)
	a.LatestVersion.ClientID, a.LatestVersion.Description = string(client), string(desc)
	if len(tags) > 0 {
		if err := json.Unmarshal(tags, &a.Tags); err != nil {
			return a, fmt.Errorf("tags: %w", err)
		}
	}
	return a, nil
}

func scanVersions(rows pgx.Rows) ([]protocol.MessageVersion, error) {
	defer rows.Close()
	var out []protocol.MessageVersion
	for rows.Next() {
		var v protocol.MessageVersion
		var delivery, hist int64
		var action string
		var event, client, desc []byte
		var opKey, fp *string
		if err := rows.Scan(&v.MessageSerial, &v.Version.Serial, &delivery, &hist, &action, &event, &v.Data, &v.Extras,
			&client, &desc, &v.Version.Metadata, &v.Version.TimestampMs, &v.MessageID, &v.StreamID, &opKey, &fp); err != nil {
			return nil, err
		}
		v.DeliverySerial, v.HistorySerial, v.Action = uint64(delivery), uint64(hist), protocol.Action(action)
		v.Event, v.Version.ClientID, v.Version.Description = string(event), string(client), string(desc)
		if opKey != nil {
			v.OpKey = *opKey
		}
		if fp != nil {
			v.Fingerprint = *fp
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// trimVersionsSQL deletes a batch of mutable messages unchanged since the age cutoff, with
// their versions. Mutable messages are kept by age only: their versions live apart from
// the stream, whose count retention also counts every mutation delivery.
const trimVersionsSQL = `
WITH gone AS (
    DELETE FROM pushwire_versioned_messages WHERE ctid IN (
        SELECT ctid FROM pushwire_versioned_messages WHERE latest_version_ms < $1 LIMIT $2)
    RETURNING app_id, channel, message_serial
)
DELETE FROM pushwire_message_versions v USING gone
WHERE v.app_id = gone.app_id AND v.channel = gone.channel AND v.message_serial = gone.message_serial`

// trimVersions applies age retention to mutable messages, in batches.
func (p *Postgres) trimVersions(ctx context.Context) (int64, error) {
	var total int64
	for {
		qctx, cancel := context.WithTimeout(ctx, 10*p.opts.QueryTimeout)
		tag, err := p.pool.Exec(qctx, trimVersionsSQL, p.cutoff(), trimAgeBatch)
		cancel()
		if err != nil {
			return total, fmt.Errorf("history: trim versions: %w", unavailable(ctx, err))
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() == 0 {
			return total, nil
		}
	}
}
