package history

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// Group commit of appends.
//
// Append and AppendAsync do not talk to the database themselves: they queue the message and a
// committer goroutine sends what is queued, across every channel, as one statement
// (commitSQL: arrays of every message, the messages of a channel in queue order) — one
// implicit transaction and one round trip. It bumps each channel's pushwire_streams row by
// its message count (taking the row lock that orders the channel's appends across nodes
// until commit) and inserts the messages at the serials just below the new head. So a batch
// either commits whole or not at all: serials have no gaps and no duplicates, a channel's serials follow its queue
// order, and nobody learns a serial before its commit. Rows are locked in key order, so two
// nodes committing overlapping batches cannot deadlock.
//
// The committers run one batch at a time each; while one batch is in flight the next one
// gathers, so under load a round trip carries many messages. With several committers, a
// channel is only ever in one in-flight batch (its later messages wait for the next), which
// keeps its order.

// maxCommitBatch bounds the messages of one group commit.
const maxCommitBatch = 4096

// maxChannelShare bounds one channel's messages in one group commit: they are delivered
// together once it commits, and a burst larger than a connection's write queue (1,024
// frames by default) would close its subscribers as too slow after a database hiccup.
const maxChannelShare = 512

// commitTimeoutFactor × QueryTimeout bounds one group commit (15 s by default): a database
// that stalls for a few seconds delays a batch without failing it.
const commitTimeoutFactor = 3

// commitWorkers is the number of batches in flight at once.
const commitWorkers = 4

// queued is one append waiting for its group commit.
type queued struct {
	app  string
	msg  *protocol.Message
	ctx  context.Context
	done chan error
	next *queued // the channel's next queued append
	// agg, for the create of a mutable message, is its first aggregate: stored with its
	// first version in the same transaction.
	agg *protocol.VersionedMessage
}

// chanQueue is one channel's queued appends, in order.
type chanQueue struct {
	key        streamKey
	head, tail *queued
	n          int
	busy       bool // in a batch in flight
	ready      bool // in committer.ready
}

// committer gathers appends into batches.
type committer struct {
	queues map[streamKey]*chanQueue
	ready  []*chanQueue // channels with appends and no batch in flight, oldest first
	wake   chan struct{}
}

// AppendAsync implements channels.PipelinedHistory: it queues msg after every earlier
// append of its channel through this store and returns at once; the channel gets nil once
// msg is committed (msg.Serial and msg.StreamID then set), or the error. ctx only matters
// until the batch carrying msg is sent.
func (p *Postgres) AppendAsync(ctx context.Context, appID string, msg *protocol.Message) <-chan error {
	return p.enqueue(&queued{app: appID, msg: msg, ctx: ctx, done: make(chan error, 1)})
}

// CreateAsync implements channels.PipelinedVersions: Create, queued and group-committed like
// AppendAsync (the create's stream append, its aggregate and first version in the batch's
// transaction).
func (p *Postgres) CreateAsync(ctx context.Context, appID string, msg *protocol.Message, agg protocol.VersionedMessage) <-chan error {
	q := &queued{app: appID, msg: msg, ctx: ctx, done: make(chan error, 1), agg: &agg}
	if msg.Mutable == nil {
		q.done <- fmt.Errorf("history: create %s: message is not mutable", msg.Channel)
		return q.done
	}
	return p.enqueue(q)
}

// enqueue queues q after its channel's earlier appends.
func (p *Postgres) enqueue(q *queued) <-chan error {
	msg, appID := q.msg, q.app
	if msg.PublishedAtMs == 0 {
		msg.PublishedAtMs = p.opts.Now().UnixMilli()
	}
	k := streamKey{appID, msg.Channel}
	p.qmu.Lock()
	if p.closed {
		p.qmu.Unlock()
		q.done <- fmt.Errorf("history: append %s: store closed", msg.Channel)
		return q.done
	}
	c := &p.commit
	cq := c.queues[k]
	if cq == nil {
		cq = &chanQueue{key: k}
		c.queues[k] = cq
	}
	if cq.tail == nil {
		cq.head = q
	} else {
		cq.tail.next = q
	}
	cq.tail = q
	cq.n++
	if !cq.busy && !cq.ready {
		cq.ready = true
		c.ready = append(c.ready, cq)
	}
	p.qmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return q.done
}

// Append implements channels.History: AppendAsync, waited for.
func (p *Postgres) Append(ctx context.Context, appID string, msg *protocol.Message) error {
	select {
	case err := <-p.AppendAsync(ctx, appID, msg):
		return err
	case <-ctx.Done():
		// The append may still commit; the caller gave up on knowing.
		return fmt.Errorf("history: append %s: %w", msg.Channel, ctx.Err())
	}
}

// group is one channel's share of a batch.
type group struct {
	cq    *chanQueue
	items []*queued
}

// take removes up to maxCommitBatch queued appends, whole channels where they fit, and
// marks their channels busy. Callers hold p.qmu.
func (p *Postgres) take() []group {
	c := &p.commit
	var out []group
	n := 0
	for len(c.ready) > 0 && n < maxCommitBatch {
		cq := c.ready[0]
		c.ready = c.ready[1:]
		cq.ready = false
		g := group{cq: cq}
		for cq.head != nil && n < maxCommitBatch && len(g.items) < maxChannelShare {
			q := cq.head
			cq.head, q.next = q.next, nil
			cq.n--
			g.items = append(g.items, q)
			n++
		}
		if cq.head == nil {
			cq.tail = nil
		}
		cq.busy = true
		out = append(out, g)
	}
	if len(c.ready) == 0 {
		c.ready = nil // let a long backlog's array go
	}
	return out
}

// release marks a batch's channels idle again, requeues those with appends left and drops
// the empty ones. Callers hold p.qmu.
func (p *Postgres) release(gs []group) {
	c := &p.commit
	for _, g := range gs {
		cq := g.cq
		cq.busy = false
		switch {
		case cq.head != nil:
			cq.ready = true
			c.ready = append(c.ready, cq)
		default:
			delete(c.queues, cq.key)
		}
	}
}

// commitLoop is one committer: it sends batches until the store closes, then fails what is
// still queued.
func (p *Postgres) commitLoop() {
	defer p.done.Done()
	for {
		p.qmu.Lock()
		gs := p.take()
		closed := p.closed
		p.qmu.Unlock()
		if len(gs) == 0 {
			if closed {
				return
			}
			select {
			case <-p.commit.wake:
			case <-p.closing:
			}
			continue
		}
		if len(gs) > 0 {
			// Another committer may find work left over.
			select {
			case p.commit.wake <- struct{}{}:
			default:
			}
		}
		p.commitBatch(gs)
		p.qmu.Lock()
		p.release(gs)
		p.qmu.Unlock()
	}
}

// bumpSQL allocates the serials of a batch: each channel's stream head moves up by its
// message count n, in key order (the row locks, held until commit, order a channel's
// appends across nodes; always taking them in one order, overlapping batches of two nodes
// cannot deadlock). A channel's messages take the n serials ending at the new head.
const bumpSQL = `
INSERT INTO pushwire_streams AS t (app_id, channel, stream_id, head_serial, total_bytes)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS g ORDER BY 1, 2
ON CONFLICT (app_id, channel) DO UPDATE
    SET head_serial = t.head_serial + excluded.head_serial, total_bytes = t.total_bytes + excluded.total_bytes
RETURNING app_id, channel, head_serial, stream_id, total_bytes`

// storeJoinSQL inserts a batch's messages right after bumpSQL in the same implicit
// transaction (one pipeline, one Sync): each message's serial, stream and byte position
// come from its stream row, just bumped and locked by this transaction (a primary-key
// lookup per message). pos is the message's place in its channel's share (1-based), n and
// gbytes that share's count and bytes, cum the running total within it.
const storeJoinSQL = `
INSERT INTO pushwire_messages (app_id, channel, serial, stream_id, event, data, name, user_id, tags,
                               message_id, extras, published_at_ms, size_bytes, cum_bytes, kind, mutable)
SELECT u.app, u.chan, s.head_serial - u.n + u.pos, s.stream_id, u.event, u.data, u.name, u.user_id, u.tags,
       u.message_id, u.extras, u.pub, u.size, s.total_bytes - u.gbytes + u.cum, u.kind, u.mutable
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bytea[], $7::bytea[], $8::bytea[],
            $9::bytea[], $10::json[], $11::bytea[], $12::bytea[], $13::bigint[], $14::integer[], $15::bigint[],
            $16::smallint[], $17::bytea[])
     AS u(app, chan, pos, n, gbytes, event, data, name, user_id, tags, message_id, extras, pub, size, cum, kind, mutable)
JOIN pushwire_streams s ON s.app_id = u.app AND s.channel = u.chan`

// storeSQL inserts a batch's messages, their serials, streams and cumulative byte positions
// computed from bumpSQL's answer.
const storeSQL = `
INSERT INTO pushwire_messages (app_id, channel, serial, stream_id, event, data, name, user_id, tags,
                               message_id, extras, published_at_ms, size_bytes, cum_bytes, kind, mutable)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bytea[], $6::bytea[], $7::bytea[], $8::bytea[],
                     $9::json[], $10::bytea[], $11::bytea[], $12::bigint[], $13::integer[], $14::bigint[], $15::smallint[], $16::bytea[])`

// commitBatch stores gs in one statement, one round trip and one transaction, and tells
// every append its outcome.
func (p *Postgres) commitBatch(gs []group) {
	// Appends whose caller gave up before the batch left are not sent.
	live := gs[:0:0]
	total := 0
	for _, g := range gs {
		items := g.items[:0:0]
		for _, q := range g.items {
			if err := q.ctx.Err(); err != nil {
				q.done <- fmt.Errorf("history: append %s: %w", q.msg.Channel, err)
				continue
			}
			items = append(items, q)
		}
		if len(items) > 0 {
			live = append(live, group{cq: g.cq, items: items})
			total += len(items)
		}
	}
	if len(live) == 0 {
		return
	}
	fail := func(err error) {
		for _, g := range live {
			for _, q := range g.items {
				q.done <- fmt.Errorf("history: append %s: %w", q.msg.Channel, err)
			}
		}
	}
	cols, err := messageColumns(live, total)
	if err != nil {
		fail(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeoutFactor*p.opts.QueryTimeout)
	defer cancel()
	type head struct {
		serial int64
		stream string
		bytes  int64
	}
	heads := make([]head, len(live))
	ng := len(live)
	apps, chans, streams := make([]string, ng), make([]string, ng), make([]string, ng)
	counts, sums := make([]int64, ng), make([]int64, ng)
	index := make(map[streamKey]int, ng)
	creates := false
	for gi, g := range live {
		apps[gi], chans[gi], streams[gi], counts[gi] = g.cq.key.app, g.cq.key.channel, protocol.NewUUID(), int64(len(g.items))
		sums[gi] = cols.groupBytes[gi]
		index[g.cq.key] = gi
		for _, q := range g.items {
			creates = creates || q.agg != nil
		}
	}
	// readHeads reads bumpSQL's answer into heads.
	readHeads := func(rows pgx.Rows) error {
		defer rows.Close()
		seen := 0
		for rows.Next() {
			var k streamKey
			var h head
			if err := rows.Scan(&k.app, &k.channel, &h.serial, &h.stream, &h.bytes); err != nil {
				return err
			}
			gi, ok := index[k]
			if !ok {
				return fmt.Errorf("group commit: unexpected stream %s/%s", k.app, k.channel)
			}
			heads[gi] = h
			seen++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if seen != ng {
			return fmt.Errorf("group commit: %d of %d streams answered", seen, ng)
		}
		return nil
	}
	// fill sets the serials, streams and byte positions that follow from each new head.
	fill := func() {
		i := 0
		for gi, g := range live {
			n := int64(len(g.items))
			before := heads[gi].bytes - cols.groupBytes[gi]
			for j := range g.items {
				cols.serials[i], cols.streams[i] = heads[gi].serial-n+1+int64(j), heads[gi].stream
				cols.cums[i] += before
				i++
			}
		}
	}
	i := 0
	for _, g := range live {
		for range g.items {
			cols.apps[i], cols.chans[i] = g.cq.key.app, g.cq.key.channel
			i++
		}
	}
	if !creates {
		// One round trip: both statements in one pipeline ending in one Sync, so one
		// implicit transaction that commits at the Sync or not at all.
		b := &pgx.Batch{}
		b.Queue(bumpSQL, apps, chans, streams, counts, sums)
		b.Queue(storeJoinSQL, cols.joinArgs()...)
		br := p.pool.SendBatch(ctx, b)
		rows, qerr := br.Query()
		if qerr == nil {
			qerr = readHeads(rows)
		}
		if qerr == nil {
			var tag pgconn.CommandTag
			if tag, qerr = br.Exec(); qerr == nil && tag.RowsAffected() != int64(total) {
				qerr = fmt.Errorf("group commit: %d of %d messages stored", tag.RowsAffected(), total)
			}
		}
		if cerr := br.Close(); qerr == nil {
			qerr = cerr
		}
		if qerr == nil {
			fill()
		}
		err = qerr
	} else {
		err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, bumpSQL, apps, chans, streams, counts, sums)
			if err != nil {
				return err
			}
			if err := readHeads(rows); err != nil {
				return err
			}
			fill()
			tag, err := tx.Exec(ctx, storeSQL, cols.args()...)
			if err != nil {
				return err
			}
			if tag.RowsAffected() != int64(total) {
				return fmt.Errorf("group commit: %d of %d messages stored", tag.RowsAffected(), total)
			}
			return p.storeCreates(ctx, tx, live, cols)
		})
	}
	if err != nil {
		fail(unavailable(ctx, err))
		return
	}
	i = 0
	for _, g := range live {
		for _, q := range g.items {
			q.msg.Serial, q.msg.StreamID = uint64(cols.serials[i]), cols.streams[i]
			if q.agg != nil {
				q.msg.Mutable.HistorySerial = q.msg.Serial
			}
			i++
		}
	}
	for _, g := range live {
		last := g.items[len(g.items)-1].msg
		p.noteAppended(g.cq.key.app, g.cq.key.channel, last.StreamID, last.Serial)
		for _, q := range g.items {
			q.done <- nil
		}
	}
}

// storeCreates stores the first aggregate and version of each mutable-message create of the
// batch (Create's rows), pipelined on tx.
func (p *Postgres) storeCreates(ctx context.Context, tx pgx.Tx, live []group, cols *columns) error {
	b := &pgx.Batch{}
	i := 0
	for _, g := range live {
		for _, q := range g.items {
			serial, stream := uint64(cols.serials[i]), cols.streams[i]
			i++
			if q.agg == nil {
				continue
			}
			agg := *q.agg
			agg.HistorySerial, agg.StreamID, agg.LatestDeliverySerial = serial, stream, serial
			agg.LatestMessageID, agg.LatestAction = q.msg.MessageID, protocol.ActionCreate
			var tags []byte
			if len(agg.Tags) > 0 {
				tags, _ = json.Marshal(agg.Tags)
			}
			b.Queue(insertAggregateSQL, aggregateArgs(q.app, agg, tags)...)
			b.Queue(insertVersionSQL, versionArgs(q.app, agg.Channel, protocol.MessageVersion{
				MessageSerial: agg.MessageSerial, HistorySerial: serial, DeliverySerial: serial, Action: protocol.ActionCreate,
				Event: agg.Event, Data: agg.Data, Extras: agg.Extras, Version: agg.LatestVersion, MessageID: q.msg.MessageID, StreamID: stream,
			}, nil, nil)...)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, b).Close()
}

// columns are storeSQL's arrays, one element per message, and each channel's byte total.
type columns struct {
	apps, chans, streams                           []string
	serials, pubs, cums                            []int64
	events, datas, names, users, ids, extras, muts [][]byte
	tags                                           []*string
	sizes                                          []int32
	kinds                                          []int16
	groupBytes                                     []int64
}

// joinArgs are storeJoinSQL's arguments (serials, streams and stream positions come from the
// stream rows).
func (c *columns) joinArgs() []any {
	n := len(c.apps)
	pos, counts, gbytes := make([]int64, n), make([]int64, n), make([]int64, n)
	for i := range n {
		if i > 0 && c.apps[i] == c.apps[i-1] && c.chans[i] == c.chans[i-1] {
			pos[i] = pos[i-1] + 1
		} else {
			pos[i] = 1
		}
	}
	for i := n - 1; i >= 0; i-- {
		if i < n-1 && pos[i+1] > 1 {
			counts[i], gbytes[i] = counts[i+1], gbytes[i+1]
		} else {
			counts[i], gbytes[i] = pos[i], c.cums[i]
		}
	}
	return []any{c.apps, c.chans, pos, counts, gbytes, c.events, c.datas, c.names, c.users, c.tags, c.ids, c.extras,
		c.pubs, c.sizes, c.cums, c.kinds, c.muts}
}

func (c *columns) args() []any {
	return []any{c.apps, c.chans, c.serials, c.streams, c.events, c.datas, c.names, c.users, c.tags, c.ids, c.extras,
		c.pubs, c.sizes, c.cums, c.kinds, c.muts}
}

// messageColumns fills the message fields of the columns; cums start as running totals
// within each channel's share of the batch.
func messageColumns(live []group, total int) (*columns, error) {
	c := &columns{apps: make([]string, total), chans: make([]string, total), streams: make([]string, total),
		serials: make([]int64, total), pubs: make([]int64, 0, total), cums: make([]int64, 0, total),
		events: make([][]byte, 0, total), datas: make([][]byte, 0, total), names: make([][]byte, 0, total),
		users: make([][]byte, 0, total), ids: make([][]byte, 0, total), extras: make([][]byte, 0, total),
		muts: make([][]byte, 0, total), tags: make([]*string, 0, total), sizes: make([]int32, 0, total),
		kinds: make([]int16, 0, total), groupBytes: make([]int64, len(live))}
	for gi, g := range live {
		var sum int64
		for _, q := range g.items {
			m := q.msg
			var tag *string
			if len(m.Tags) > 0 {
				t, err := json.Marshal(m.Tags)
				if err != nil {
					return nil, fmt.Errorf("tags: %w", err)
				}
				s := string(t)
				tag = &s
			}
			data := m.Data
			if data == nil {
				data = []byte{}
			}
			var kind int16
			if m.Mutable != nil {
				kind = 1
				if m.IsMutation() {
					kind = 2
				}
			}
			size := msgBytes(m)
			sum += size
			c.events, c.datas, c.names, c.users = append(c.events, []byte(m.Event)), append(c.datas, data), append(c.names, []byte(m.Name)), append(c.users, []byte(m.UserID))
			c.tags, c.ids, c.extras = append(c.tags, tag), append(c.ids, []byte(m.MessageID)), append(c.extras, nullBytes(m.Extras))
			c.pubs, c.sizes, c.cums = append(c.pubs, m.PublishedAtMs), append(c.sizes, int32(size)), append(c.cums, sum)
			c.kinds, c.muts = append(c.kinds, kind), append(c.muts, protocol.MarshalMutable(m.Mutable))
		}
		c.groupBytes[gi] = sum
	}
	return c, nil
}

var (
	_ channels.PipelinedHistory  = (*Postgres)(nil)
	_ channels.PipelinedVersions = (*Postgres)(nil)
)
