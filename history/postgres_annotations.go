package history

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pushwire/pushwire/annotations"
	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// Annotations in Postgres (schema version 5): one row per annotation event, serial numbers
// from the channel's row of pushwire_annotation_heads, locked until commit.

var _ annotations.Store = (*Postgres)(nil)

const (
	annotationCreate = 1
	annotationDelete = 2
)

const annotationColumns = `seq, message_serial, action, id, type, name, client_id, count, data, encoding, timestamp_ms`

// lockAnnotationMessage checks, inside tx, that the message is live and keeps it from
// being removed until commit.
func (p *Postgres) lockAnnotationMessage(ctx context.Context, tx pgx.Tx, appID, channel, serial string) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM pushwire_versioned_messages
WHERE app_id = $1 AND channel = $2 AND message_serial = $3 AND latest_version_ms >= $4 FOR KEY SHARE`, appID, channel, serial, p.cutoff()).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return channels.ErrMessageNotFound
	}
	return err
}

// nextAnnotationSeq gives out the channel's next annotation serial number; the head row
// stays locked until tx ends.
func nextAnnotationSeq(ctx context.Context, tx pgx.Tx, appID, channel string) (uint64, error) {
	var seq int64
	err := tx.QueryRow(ctx, `INSERT INTO pushwire_annotation_heads AS h (app_id, channel, seq) VALUES ($1, $2, 1)
ON CONFLICT (app_id, channel) DO UPDATE SET seq = h.seq + 1 RETURNING h.seq`, appID, channel).Scan(&seq)
	return uint64(seq), err
}

func insertAnnotation(ctx context.Context, tx pgx.Tx, appID, channel string, seq uint64, a *protocol.Annotation) error {
	action := annotationCreate
	if a.Action == protocol.AnnotationDelete {
		action = annotationDelete
	}
	_, err := tx.Exec(ctx, `INSERT INTO pushwire_annotations (app_id, channel, `+annotationColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`, appID, channel, int64(seq), a.MessageSerial, action, a.ID, a.Type,
		[]byte(a.Name), []byte(a.ClientID), int64(a.Count), nullBytes(a.Data), []byte(a.Encoding), a.TimestampMs)
	return err
}

func scanAnnotation(row pgx.Row) (protocol.Annotation, error) {
	var a protocol.Annotation
	var seq, count int64
	var action int16
	var name, client, enc, data []byte
	if err := row.Scan(&seq, &a.MessageSerial, &action, &a.ID, &a.Type, &name, &client, &count, &data, &enc, &a.TimestampMs); err != nil {
		return a, err
	}
	a.Serial, a.Name, a.ClientID, a.Encoding, a.Count = protocol.FormatAnnotationSerial(uint64(seq)), string(name), string(client), string(enc), uint64(count)
	if len(data) > 0 {
		a.Data = data
	}
	a.Action = protocol.AnnotationCreate
	if action == annotationDelete {
		a.Action = protocol.AnnotationDelete
	}
	return a, nil
}

// PublishAnnotation implements annotations.Store.
func (p *Postgres) PublishAnnotation(ctx context.Context, appID, channel string, a *protocol.Annotation) error {
	qctx, cancel := context.WithTimeout(ctx, p.opts.QueryTimeout)
	defer cancel()
	err := pgx.BeginFunc(qctx, p.pool, func(tx pgx.Tx) error {
		if err := p.lockAnnotationMessage(qctx, tx, appID, channel, a.MessageSerial); err != nil {
			return err
		}
		seq, err := nextAnnotationSeq(qctx, tx, appID, channel)
		if err != nil {
			return err
		}
		a.Serial = protocol.FormatAnnotationSerial(seq)
		return insertAnnotation(qctx, tx, appID, channel, seq, a)
	})
	switch {
	case errors.Is(err, channels.ErrMessageNotFound):
		return err
	case err != nil:
		a.Serial = ""
		return fmt.Errorf("history: annotate %s %s: %w", channel, a.MessageSerial, unavailable(ctx, err))
	}
	return nil
}

// errDuplicateDelete ends a delete transaction whose annotation was already deleted.
var errDuplicateDelete = errors.New("annotation already deleted")

// DeleteAnnotation implements annotations.Store.
func (p *Postgres) DeleteAnnotation(ctx context.Context, appID, channel, messageSerial, target string, timestampMs int64,
	authorize func(protocol.Annotation) error) (protocol.Annotation, bool, error) {
	tseq, ok := protocol.ParseAnnotationSerial(target)
	if !ok {
		return protocol.Annotation{}, false, annotations.ErrNotFound
	}
	qctx, cancel := context.WithTimeout(ctx, p.opts.QueryTimeout)
	defer cancel()
	var del protocol.Annotation
	var authErr error
	err := pgx.BeginFunc(qctx, p.pool, func(tx pgx.Tx) error {
		if err := p.lockAnnotationMessage(qctx, tx, appID, channel, messageSerial); err != nil {
			return err
		}
		seq, err := nextAnnotationSeq(qctx, tx, appID, channel) // serializes the channel's writers
		if err != nil {
			return err
		}
		var deletedBy *int64
		row := tx.QueryRow(qctx, `SELECT `+annotationColumns+`, deleted_by FROM pushwire_annotations
WHERE app_id = $1 AND channel = $2 AND seq = $3`, appID, channel, int64(tseq))
		var create protocol.Annotation
		var cseq, count int64
		var action int16
		var name, client, enc, data []byte
		err = row.Scan(&cseq, &create.MessageSerial, &action, &create.ID, &create.Type, &name, &client, &count, &data, &enc, &create.TimestampMs, &deletedBy)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return annotations.ErrNotFound
		case err != nil:
			return err
		case action != annotationCreate || create.MessageSerial != messageSerial:
			return annotations.ErrNotFound
		}
		create.Serial, create.Action, create.Name, create.ClientID, create.Encoding, create.Count, create.Data =
			target, protocol.AnnotationCreate, string(name), string(client), string(enc), uint64(count), data
		if authErr = authorize(create); authErr != nil {
			return authErr
		}
		if deletedBy != nil {
			d, err := scanAnnotation(tx.QueryRow(qctx, `SELECT `+annotationColumns+` FROM pushwire_annotations
WHERE app_id = $1 AND channel = $2 AND seq = $3`, appID, channel, *deletedBy))
			if err != nil {
				return err
			}
			del = d
			return errDuplicateDelete // rolls back the serial number taken
		}
		del = protocol.Annotation{ID: create.ID, Action: protocol.AnnotationDelete, Serial: protocol.FormatAnnotationSerial(seq),
			MessageSerial: messageSerial, Type: create.Type, Name: create.Name, ClientID: create.ClientID, Count: create.Count, TimestampMs: timestampMs}
		if err := insertAnnotation(qctx, tx, appID, channel, seq, &del); err != nil {
			return err
		}
		_, err = tx.Exec(qctx, `UPDATE pushwire_annotations SET deleted_by = $4 WHERE app_id = $1 AND channel = $2 AND seq = $3`,
			appID, channel, int64(tseq), int64(seq))
		return err
	})
	switch {
	case errors.Is(err, errDuplicateDelete):
		return del, true, nil
	case authErr != nil:
		return protocol.Annotation{}, false, authErr
	case errors.Is(err, channels.ErrMessageNotFound), errors.Is(err, annotations.ErrNotFound):
		return protocol.Annotation{}, false, err
	case err != nil:
		return protocol.Annotation{}, false, fmt.Errorf("history: delete annotation %s %s: %w", channel, target, unavailable(ctx, err))
	}
	return del, false, nil
}

// ReadAnnotations implements annotations.Store.
func (p *Postgres) ReadAnnotations(ctx context.Context, appID, channel, messageSerial string, q annotations.Query) ([]protocol.Annotation, bool, error) {
	limit := q.Limit
	if limit <= 0 || limit > MaxReadLimit {
		limit = MaxReadLimit
	}
	var after int64
	if q.After != "" {
		n, ok := protocol.ParseAnnotationSerial(q.After)
		if !ok {
			return nil, false, fmt.Errorf("history: annotations %s: cursor %q is not an annotation serial", channel, q.After)
		}
		after = int64(n)
	}
	qctx, cancel := context.WithTimeout(ctx, p.opts.QueryTimeout)
	defer cancel()
	var out []protocol.Annotation
	more := false
	err := pgx.BeginTxFunc(qctx, p.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(qctx, `SELECT 1 FROM pushwire_versioned_messages
WHERE app_id = $1 AND channel = $2 AND message_serial = $3 AND latest_version_ms >= $4`, appID, channel, messageSerial, p.cutoff()).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return channels.ErrMessageNotFound
		}
		if err != nil {
			return err
		}
		rows, err := tx.Query(qctx, `SELECT `+annotationColumns+` FROM pushwire_annotations
WHERE app_id = $1 AND channel = $2 AND message_serial = $3 AND seq > $4 AND ($5 = '' OR type = $5)
ORDER BY seq LIMIT $6`, appID, channel, messageSerial, after, q.Type, limit+1)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			a, err := scanAnnotation(rows)
			if err != nil {
				return err
			}
			if len(out) == limit {
				more = true
				break
			}
			out = append(out, a)
		}
		return rows.Err()
	})
	switch {
	case errors.Is(err, channels.ErrMessageNotFound):
		return nil, false, err
	case err != nil:
		return nil, false, fmt.Errorf("history: annotations %s %s: %w", channel, messageSerial, unavailable(ctx, err))
	}
	return out, more, nil
}

// annotatedScan bounds the newest annotation events AnnotatedMessages reads.
const annotatedScan = 5000

// AnnotatedMessages implements annotations.Store: it looks through the channel's newest
// annotation events (at most annotatedScan) for their live messages.
func (p *Postgres) AnnotatedMessages(ctx context.Context, appID, channel string, limit int) ([]string, error) {
	qctx, cancel := context.WithTimeout(ctx, p.opts.QueryTimeout)
	defer cancel()
	rows, err := p.pool.Query(qctx, `SELECT r.message_serial FROM (
    SELECT message_serial, max(seq) AS last FROM (
        SELECT message_serial, seq FROM pushwire_annotations WHERE app_id = $1 AND channel = $2 ORDER BY seq DESC LIMIT $5
    ) recent GROUP BY message_serial
) r JOIN pushwire_versioned_messages v ON v.app_id = $1 AND v.channel = $2 AND v.message_serial = r.message_serial
WHERE v.latest_version_ms >= $3 ORDER BY r.last DESC LIMIT $4`, appID, channel, p.cutoff(), limit, annotatedScan)
	if err != nil {
		return nil, fmt.Errorf("history: annotated messages %s: %w", channel, unavailable(ctx, err))
	}
	serials, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("history: annotated messages %s: %w", channel, unavailable(ctx, err))
	}
	return serials, nil
}
