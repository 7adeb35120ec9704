package push

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/pushwire/pushwire/internal/pgmigrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// pushMigrationLock is the advisory lock key of the push migrations.
const pushMigrationLock = 7_231_845_200

// PostgresOptions tune the Postgres store.
type PostgresOptions struct {
	// Logger receives migration logs. Default none.
	Logger *zap.Logger
	// MaxConns caps the pool. Default 16.
	MaxConns int32
}

// Postgres is the durable Store: devices, interests, publishes and the delivery queue in
// Postgres, shared by every node on the database. Claims use FOR UPDATE SKIP LOCKED with a
// lease, so nodes never send one delivery at once and a dead node's work is taken over when
// its lease lapses.
type Postgres struct {
	pool *pgxpool.Pool
}

var _ Store = (*Postgres)(nil)

// NewPostgres connects to dsn and applies the push migrations (table
// pushwire_push_migrations).
func NewPostgres(ctx context.Context, dsn string, o PostgresOptions) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("push: database url: %w", err)
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	} else if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = 16
	}
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		return nil, fmt.Errorf("push: connect: %w", err)
	}
	done, err := pgmigrate.Apply(ctx, conn, pgmigrate.Set{FS: migrations, Dir: "migrations", Table: "pushwire_push_migrations", Lock: pushMigrationLock})
	_ = conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("push: migrate: %w", err)
	}
	if o.Logger != nil {
		for _, m := range done {
			o.Logger.Info("push migration applied", zap.String("migration", m))
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("push: connect: %w", err)
	}
	return &Postgres{pool: pool}, nil
}

// Close closes the pool.
func (p *Postgres) Close() { p.pool.Close() }

const deviceCols = `app_id, id, client_id, platform, token, web_endpoint, web_p256dh, web_auth, form_factor, os,
	timezone, locale, metadata, secret_hash, state, failure_count, error_reason, updated_at`

func scanDevice(row pgx.Row) (*Device, error) {
	var d Device
	var endpoint, p256dh, auth, meta string
	err := row.Scan(&d.AppID, &d.ID, &d.ClientID, &d.Platform, &d.Token, &endpoint, &p256dh, &auth, &d.FormFactor, &d.OS,
		&d.Timezone, &d.Locale, &meta, &d.SecretHash, &d.State, &d.FailureCount, &d.ErrorReason, &d.UpdatedAt)
	if err != nil {
		return nil, err
	}
	if endpoint != "" {
		d.Web = &WebSubscription{Endpoint: endpoint, P256dh: p256dh, Auth: auth}
	}
	if meta != "" {
		d.Metadata = json.RawMessage(meta)
	}
	return &d, nil
}

func scanDevices(rows pgx.Rows, err error) ([]*Device, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// PutDevice implements Store.
func (p *Postgres) PutDevice(ctx context.Context, d *Device) (bool, error) {
	w := d.Web
	if w == nil {
		w = &WebSubscription{}
	}
	var inserted bool
	err := p.pool.QueryRow(ctx, `INSERT INTO push_devices (`+deviceCols+`)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)
		ON CONFLICT (app_id, id) DO UPDATE SET client_id=EXCLUDED.client_id, platform=EXCLUDED.platform,
			token=EXCLUDED.token, web_endpoint=EXCLUDED.web_endpoint, web_p256dh=EXCLUDED.web_p256dh,
			web_auth=EXCLUDED.web_auth, form_factor=EXCLUDED.form_factor, os=EXCLUDED.os, timezone=EXCLUDED.timezone,
			locale=EXCLUDED.locale, metadata=EXCLUDED.metadata, secret_hash=EXCLUDED.secret_hash, state=EXCLUDED.state,
			failure_count=EXCLUDED.failure_count, error_reason=EXCLUDED.error_reason, updated_at=EXCLUDED.updated_at
		RETURNING xmax = 0`,
		d.AppID, d.ID, d.ClientID, string(d.Platform), d.Token, w.Endpoint, w.P256dh, w.Auth, d.FormFactor, d.OS,
		d.Timezone, d.Locale, string(d.Metadata), d.SecretHash, orStr(d.State, StateActive), d.FailureCount, d.ErrorReason, d.UpdatedAt).Scan(&inserted)
	return inserted, err
}

// GetDevice implements Store.
func (p *Postgres) GetDevice(ctx context.Context, appID, id string) (*Device, error) {
	d, err := scanDevice(p.pool.QueryRow(ctx, `SELECT `+deviceCols+` FROM push_devices WHERE app_id=$1 AND id=$2`, appID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return d, err
}

// GetDevices implements Store.
func (p *Postgres) GetDevices(ctx context.Context, appID string, ids []string) ([]*Device, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	ds, err := scanDevices(p.pool.Query(ctx, `SELECT `+deviceCols+` FROM push_devices WHERE app_id=$1 AND id = ANY($2)`, appID, ids))
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*Device, len(ds))
	for _, d := range ds {
		byID[d.ID] = d
	}
	out := make([]*Device, 0, len(ds))
	for _, id := range ids {
		if d, ok := byID[id]; ok {
			out = append(out, d)
			delete(byID, id)
		}
	}
	return out, nil
}

// ListDevices implements Store.
func (p *Postgres) ListDevices(ctx context.Context, appID, clientID, after string, limit int) ([]*Device, error) {
	if clientID != "" {
		return scanDevices(p.pool.Query(ctx, `SELECT `+deviceCols+` FROM push_devices
			WHERE app_id=$1 AND client_id=$2 AND id > $3 ORDER BY id LIMIT $4`, appID, clientID, after, limit))
	}
	return scanDevices(p.pool.Query(ctx, `SELECT `+deviceCols+` FROM push_devices
		WHERE app_id=$1 AND id > $2 ORDER BY id LIMIT $3`, appID, after, limit))
}

// DeleteDevice implements Store.
func (p *Postgres) DeleteDevice(ctx context.Context, appID, id string) (bool, error) {
	var n int64
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM push_devices WHERE app_id=$1 AND id=$2`, appID, id)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		_, err = tx.Exec(ctx, `DELETE FROM push_subscriptions WHERE app_id=$1 AND device_id=$2`, appID, id)
		return err
	})
	return n > 0, err
}

// MarkDevice implements Store.
func (p *Postgres) MarkDevice(ctx context.Context, appID, id string, failed bool, reason string) error {
	if failed {
		_, err := p.pool.Exec(ctx, `UPDATE push_devices SET failure_count=failure_count+1, state='FAILING', error_reason=$3
			WHERE app_id=$1 AND id=$2`, appID, id, reason)
		return err
	}
	_, err := p.pool.Exec(ctx, `UPDATE push_devices SET failure_count=0, state='ACTIVE', error_reason=''
		WHERE app_id=$1 AND id=$2`, appID, id)
	return err
}

// PutSubscription implements Store.
func (p *Postgres) PutSubscription(ctx context.Context, s Subscription) (bool, error) {
	tag, err := p.pool.Exec(ctx, `INSERT INTO push_subscriptions (app_id, channel, key, device_id, client_id)
		VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING`, s.AppID, s.Channel, s.key(), s.DeviceID, s.ClientID)
	return err == nil && tag.RowsAffected() > 0, err
}

// ListSubscriptions implements Store.
func (p *Postgres) ListSubscriptions(ctx context.Context, appID string, f Filter, after string, limit int) ([]Subscription, error) {
	var rows pgx.Rows
	var err error
	const cols = `SELECT app_id, channel, device_id, client_id FROM push_subscriptions `
	switch {
	case f.Channel != "" && (f.DeviceID != "" || f.ClientID != ""):
		rows, err = p.pool.Query(ctx, cols+`WHERE app_id=$1 AND channel=$2 AND key=$3 AND key > $4`,
			appID, f.Channel, Subscription{DeviceID: f.DeviceID, ClientID: f.ClientID}.key(), after)
	case f.Channel != "":
		rows, err = p.pool.Query(ctx, cols+`WHERE app_id=$1 AND channel=$2 AND key > $3 ORDER BY key LIMIT $4`, appID, f.Channel, after, limit)
	case f.DeviceID != "":
		rows, err = p.pool.Query(ctx, cols+`WHERE app_id=$1 AND device_id=$2 AND channel > $3 ORDER BY channel LIMIT $4`, appID, f.DeviceID, after, limit)
	case f.ClientID != "":
		rows, err = p.pool.Query(ctx, cols+`WHERE app_id=$1 AND device_id='' AND client_id=$2 AND channel > $3 ORDER BY channel LIMIT $4`, appID, f.ClientID, after, limit)
	default:
		ch, key, _ := strings.Cut(after, "\x00")
		rows, err = p.pool.Query(ctx, cols+`WHERE app_id=$1 AND (channel, key) > ($2, $3) ORDER BY channel, key LIMIT $4`, appID, ch, key, limit)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Subscription
	for rows.Next() {
		var s Subscription
		if err := rows.Scan(&s.AppID, &s.Channel, &s.DeviceID, &s.ClientID); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// DeleteSubscriptions implements Store.
func (p *Postgres) DeleteSubscriptions(ctx context.Context, appID string, f Filter) (int, error) {
	var q string
	args := []any{appID}
	switch {
	case f.Channel != "" && (f.DeviceID != "" || f.ClientID != ""):
		q, args = `DELETE FROM push_subscriptions WHERE app_id=$1 AND channel=$2 AND key=$3`, append(args, f.Channel, Subscription{DeviceID: f.DeviceID, ClientID: f.ClientID}.key())
	case f.Channel != "":
		q, args = `DELETE FROM push_subscriptions WHERE app_id=$1 AND channel=$2`, append(args, f.Channel)
	case f.DeviceID != "":
		q, args = `DELETE FROM push_subscriptions WHERE app_id=$1 AND device_id=$2`, append(args, f.DeviceID)
	case f.ClientID != "":
		q, args = `DELETE FROM push_subscriptions WHERE app_id=$1 AND device_id='' AND client_id=$2`, append(args, f.ClientID)
	default:
		return 0, nil
	}
	tag, err := p.pool.Exec(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// ListChannels implements Store.
func (p *Postgres) ListChannels(ctx context.Context, appID, after string, limit int) ([]string, error) {
	rows, err := p.pool.Query(ctx, `SELECT DISTINCT channel FROM push_subscriptions WHERE app_id=$1 AND channel > $2 ORDER BY channel LIMIT $3`, appID, after, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

const publishCols = `app_id, id, request, state, planned, succeeded, failed, expired, retries, removed, created_at, due,
	cursor, lease_until, error`

func scanPublish(row pgx.Row) (*Publish, error) {
	var p Publish
	var req []byte
	var lease *time.Time
	c := &p.Counters
	err := row.Scan(&p.AppID, &p.ID, &req, &p.State, &c.Planned, &c.Succeeded, &c.Failed, &c.Expired, &c.Retries, &c.Removed,
		&p.CreatedAt, &p.Due, &p.Cursor, &lease, &p.Error)
	if err != nil {
		return nil, err
	}
	if lease != nil {
		p.LeaseUntil = *lease
	}
	if err := json.Unmarshal(req, &p.Request); err != nil {
		return nil, fmt.Errorf("push: publish %s: request: %w", p.ID, err)
	}
	return &p, nil
}

// CreatePublish implements Store.
func (p *Postgres) CreatePublish(ctx context.Context, pub *Publish) (*Publish, bool, error) {
	req, err := json.Marshal(pub.Request)
	if err != nil {
		return nil, false, err
	}
	tag, err := p.pool.Exec(ctx, `INSERT INTO push_publishes (app_id, id, request, state, created_at, due)
		VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT DO NOTHING`, pub.AppID, pub.ID, string(req), pub.State, pub.CreatedAt, pub.Due)
	if err != nil {
		return nil, false, err
	}
	stored, err := p.GetPublish(ctx, pub.AppID, pub.ID)
	return stored, tag.RowsAffected() > 0, err
}

// GetPublish implements Store.
func (p *Postgres) GetPublish(ctx context.Context, appID, id string) (*Publish, error) {
	pub, err := scanPublish(p.pool.QueryRow(ctx, `SELECT `+publishCols+` FROM push_publishes WHERE app_id=$1 AND id=$2`, appID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return pub, err
}

// CancelPublish implements Store.
func (p *Postgres) CancelPublish(ctx context.Context, appID, id string) (*Publish, error) {
	if _, err := p.pool.Exec(ctx, `UPDATE push_publishes SET state='cancelled'
		WHERE app_id=$1 AND id=$2 AND state IN ('scheduled','accepted')`, appID, id); err != nil {
		return nil, err
	}
	return p.GetPublish(ctx, appID, id)
}

// ClaimPublish implements Store.
func (p *Postgres) ClaimPublish(ctx context.Context, now, leaseUntil time.Time) (*Publish, error) {
	pub, err := scanPublish(p.pool.QueryRow(ctx, `UPDATE push_publishes p SET state='planning', lease_until=$2
		FROM (SELECT app_id, id FROM push_publishes
			WHERE (state IN ('scheduled','accepted') AND due <= $1) OR (state='planning' AND lease_until < $1)
			ORDER BY due LIMIT 1 FOR UPDATE SKIP LOCKED) c
		WHERE p.app_id=c.app_id AND p.id=c.id
		RETURNING p.app_id, p.id, p.request, p.state, p.planned, p.succeeded, p.failed, p.expired, p.retries, p.removed,
			p.created_at, p.due, p.cursor, p.lease_until, p.error`, now, leaseUntil))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return pub, err
}

// PlanPublish implements Store.
func (p *Postgres) PlanPublish(ctx context.Context, pub *Publish, ds []*Delivery, done bool) (int, error) {
	n := len(ds)
	app, pid, dev, client, plat := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	due, exp, upd := make([]time.Time, n), make([]*time.Time, n), make([]time.Time, n)
	for i, d := range ds {
		app[i], pid[i], dev[i], client[i], plat[i], due[i], upd[i] = d.AppID, d.PublishID, d.DeviceID, d.ClientID, string(d.Platform), d.Due, d.UpdatedAt
		if !d.ExpiresAt.IsZero() {
			t := d.ExpiresAt
			exp[i] = &t
		}
	}
	state := ""
	if done {
		state = PublishDispatching
		if pub.State == PublishExpired || pub.State == PublishFailed {
			state = pub.State
		}
	}
	var added int
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if n > 0 {
			tag, err := tx.Exec(ctx, `INSERT INTO push_deliveries (app_id, publish_id, device_id, client_id, platform, state, due, expires_at, updated_at)
				SELECT a, b, c, d, e, 'pending', f, g, h FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
					$6::timestamptz[], $7::timestamptz[], $8::timestamptz[]) AS t(a, b, c, d, e, f, g, h)
				ON CONFLICT DO NOTHING`, app, pid, dev, client, plat, due, exp, upd)
			if err != nil {
				return err
			}
			added = int(tag.RowsAffected())
		}
		return tx.QueryRow(ctx, `UPDATE push_publishes SET planned = planned + $3, cursor = $4, lease_until = $5,
				state = CASE WHEN $6 = '' THEN state ELSE pushwire_push_settle($6, planned + $3, succeeded, failed, expired) END,
				error = CASE WHEN $7 = '' THEN error ELSE $7 END
			WHERE app_id=$1 AND id=$2 RETURNING planned, succeeded, failed, expired, retries, removed, state`,
			pub.AppID, pub.ID, added, pub.Cursor, pub.LeaseUntil, state, pub.Error).Scan(
			&pub.Counters.Planned, &pub.Counters.Succeeded, &pub.Counters.Failed, &pub.Counters.Expired, &pub.Counters.Retries, &pub.Counters.Removed, &pub.State)
	})
	return added, err
}

const deliveryCols = `app_id, publish_id, device_id, client_id, platform, state, attempts, due, lease_until, expires_at,
	provider_id, status, reason, token_removed, updated_at`

func scanDeliveries(rows pgx.Rows, err error) ([]*Delivery, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Delivery
	for rows.Next() {
		var d Delivery
		var lease, exp *time.Time
		if err := rows.Scan(&d.AppID, &d.PublishID, &d.DeviceID, &d.ClientID, &d.Platform, &d.State, &d.Attempts, &d.Due, &lease, &exp,
			&d.ProviderID, &d.Status, &d.Reason, &d.TokenRemoved, &d.UpdatedAt); err != nil {
			return nil, err
		}
		if lease != nil {
			d.LeaseUntil = *lease
		}
		if exp != nil {
			d.ExpiresAt = *exp
		}
		out = append(out, &d)
	}
	return out, rows.Err()
}

// ClaimDeliveries implements Store.
func (p *Postgres) ClaimDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]*Delivery, error) {
	ds, err := scanDeliveries(p.pool.Query(ctx, `UPDATE push_deliveries d SET lease_until=$2
		FROM (SELECT app_id, publish_id, device_id FROM push_deliveries
			WHERE state='pending' AND due <= $1 AND (lease_until IS NULL OR lease_until < $1)
			ORDER BY due LIMIT $3 FOR UPDATE SKIP LOCKED) c
		WHERE d.app_id=c.app_id AND d.publish_id=c.publish_id AND d.device_id=c.device_id
		RETURNING d.app_id, d.publish_id, d.device_id, d.client_id, d.platform, d.state, d.attempts, d.due, d.lease_until,
			d.expires_at, d.provider_id, d.status, d.reason, d.token_removed, d.updated_at`, now, leaseUntil, limit))
	if err != nil {
		return nil, err
	}
	// UPDATE ... RETURNING has no order: oldest due first, as promised.
	slices.SortFunc(ds, func(a, b *Delivery) int { return a.Due.Compare(b.Due) })
	return ds, nil
}

// FinishDeliveries implements Store: one statement updates the deliveries and adds their
// outcomes to their publishes' counters, settling the publishes that are complete.
func (p *Postgres) FinishDeliveries(ctx context.Context, ds []*Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	n := len(ds)
	app, pid, dev, state, prov, reason := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	attempts, status := make([]int32, n), make([]int32, n)
	due, upd := make([]time.Time, n), make([]time.Time, n)
	removed := make([]bool, n)
	for i, d := range ds {
		app[i], pid[i], dev[i], state[i], prov[i], reason[i] = d.AppID, d.PublishID, d.DeviceID, d.State, d.ProviderID, d.Reason
		attempts[i], status[i], due[i], upd[i], removed[i] = int32(d.Attempts), int32(d.Status), d.Due, d.UpdatedAt, d.TokenRemoved
	}
	_, err := p.pool.Exec(ctx, `WITH input AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::timestamptz[], $7::text[],
				$8::int[], $9::text[], $10::bool[], $11::timestamptz[])
				AS t(app_id, publish_id, device_id, state, attempts, due, provider_id, status, reason, token_removed, updated_at)),
		upd AS (
			UPDATE push_deliveries d SET state=i.state, attempts=i.attempts, due=i.due, lease_until=NULL,
				provider_id=i.provider_id, status=i.status, reason=i.reason, token_removed=i.token_removed, updated_at=i.updated_at
			FROM input i, push_deliveries o
			WHERE d.app_id=i.app_id AND d.publish_id=i.publish_id AND d.device_id=i.device_id AND d.state='pending'
				AND o.app_id=d.app_id AND o.publish_id=d.publish_id AND o.device_id=d.device_id
			RETURNING d.app_id, d.publish_id, i.state, i.token_removed, i.attempts > o.attempts AS retried),
		agg AS (
			SELECT app_id, publish_id,
				count(*) FILTER (WHERE state='delivered')::int AS s,
				count(*) FILTER (WHERE state='failed')::int AS f,
				count(*) FILTER (WHERE state='expired')::int AS e,
				count(*) FILTER (WHERE state='pending' AND retried)::int AS r,
				count(*) FILTER (WHERE state='failed' AND token_removed)::int AS x
			FROM upd GROUP BY app_id, publish_id)
		UPDATE push_publishes p SET succeeded=p.succeeded+agg.s, failed=p.failed+agg.f, expired=p.expired+agg.e,
			retries=p.retries+agg.r, removed=p.removed+agg.x,
			state=pushwire_push_settle(p.state, p.planned, p.succeeded+agg.s, p.failed+agg.f, p.expired+agg.e)
		FROM agg WHERE p.app_id=agg.app_id AND p.id=agg.publish_id`,
		app, pid, dev, state, attempts, due, prov, status, reason, removed, upd)
	return err
}

// ListDeliveries implements Store.
func (p *Postgres) ListDeliveries(ctx context.Context, appID, publishID, after string, limit int) ([]*Delivery, error) {
	return scanDeliveries(p.pool.Query(ctx, `SELECT `+deliveryCols+` FROM push_deliveries
		WHERE app_id=$1 AND publish_id=$2 AND device_id > $3 ORDER BY device_id LIMIT $4`, appID, publishID, after, limit))
}

// NextDue implements Store.
func (p *Postgres) NextDue(ctx context.Context) (time.Time, bool, error) {
	var t *time.Time
	err := p.pool.QueryRow(ctx, `SELECT min(t) FROM (
		(SELECT due AS t FROM push_deliveries WHERE state='pending' AND lease_until IS NULL ORDER BY due LIMIT 1)
		UNION ALL (SELECT lease_until FROM push_deliveries WHERE state='pending' AND lease_until IS NOT NULL ORDER BY lease_until LIMIT 1)
		UNION ALL (SELECT due FROM push_publishes WHERE state IN ('scheduled','accepted') ORDER BY due LIMIT 1)
		UNION ALL (SELECT lease_until FROM push_publishes WHERE state='planning' ORDER BY lease_until LIMIT 1)) x`).Scan(&t)
	if err != nil || t == nil {
		return time.Time{}, false, err
	}
	return *t, true, nil
}

// PruneFinished implements Store.
func (p *Postgres) PruneFinished(ctx context.Context, before time.Time, limit int) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `DELETE FROM push_publishes WHERE (app_id, id) IN (
				SELECT app_id, id FROM push_publishes
				WHERE state NOT IN ('scheduled','accepted','planning','dispatching') AND created_at < $1 LIMIT $2)
			RETURNING app_id, id`, before, limit)
		if err != nil {
			return err
		}
		var apps, ids []string
		for rows.Next() {
			var a, id string
			if err := rows.Scan(&a, &id); err != nil {
				rows.Close()
				return err
			}
			apps, ids = append(apps, a), append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		n = len(ids)
		for _, table := range []string{"push_deliveries", "push_delivery_events"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` t USING unnest($1::text[], $2::text[]) AS x(app_id, id)
				WHERE t.app_id = x.app_id AND t.publish_id = x.id`, apps, ids); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

// AddDeliveryEvent implements Store.
func (p *Postgres) AddDeliveryEvent(ctx context.Context, e *DeliveryEvent) error {
	_, err := p.pool.Exec(ctx, `INSERT INTO push_delivery_events (app_id, publish_id, event_id, occurred_at, result)
		VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING`, e.AppID, e.PublishID, e.EventID, e.OccurredAt, string(e.Result))
	return err
}

// ListDeliveryEvents implements Store.
func (p *Postgres) ListDeliveryEvents(ctx context.Context, appID, publishID string, limit int) ([]*DeliveryEvent, error) {
	rows, err := p.pool.Query(ctx, `SELECT app_id, publish_id, event_id, occurred_at, result FROM push_delivery_events
		WHERE app_id=$1 AND publish_id=$2 ORDER BY seq LIMIT $3`, appID, publishID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*DeliveryEvent
	for rows.Next() {
		var e DeliveryEvent
		var res string
		if err := rows.Scan(&e.AppID, &e.PublishID, &e.EventID, &e.OccurredAt, &res); err != nil {
			return nil, err
		}
		e.Result = json.RawMessage(res)
		out = append(out, &e)
	}
	return out, rows.Err()
}
