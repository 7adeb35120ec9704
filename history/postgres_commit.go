package history

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// Group commit of appends.
//
// Append and AppendAsync do not talk to the database themselves: they queue the message and a
// committer goroutine sends what is queued, across every channel, as one pipelined batch —
// one statement per channel, channels in key order, the messages of a channel in queue order
// — ending in a single Sync, so the whole batch is one implicit transaction and one round
// trip. Each statement bumps the channel's pushwire_streams row by its message count (taking
// the row lock that orders the channel's appends across nodes until commit) and inserts the
// messages at the serials just below the new head. So a batch either commits whole or not
// at all: serials have no gaps and no duplicates, a channel's serials follow its queue
// order, and nobody learns a serial before its commit. Rows are locked in key order, so two
// nodes committing overlapping batches cannot deadlock.
//
// The committers run one batch at a time each; while one batch is in flight the next one
// gathers, so under load a round trip carries many messages. With several committers, a
// channel is only ever in one in-flight batch (its later messages wait for the next), which
// keeps its order.

// maxCommitBatch bounds the messages of one group commit.
const maxCommitBatch = 4096

// commitWorkers is the number of batches in flight at once.
const commitWorkers = 4

// queued is one append waiting for its group commit.
type queued struct {
	app  string
	msg  *protocol.Message
	ctx  context.Context
	done chan error
	next *queued // the channel's next queued append
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
	q := &queued{app: appID, msg: msg, ctx: ctx, done: make(chan error, 1)}
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
		for cq.head != nil && n < maxCommitBatch {
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

// appendManySQL stores one channel's k messages: the upsert bumps the stream's head by k
// (its row lock orders the channel's appends until commit) and the messages take the k
// serials ending at the new head, in array order. cum_bytes is the stream's running total
// just after each message ($5 is the batch's total, the cum array the running total within
// it).
const appendManySQL = `
WITH s AS (
    INSERT INTO pushwire_streams AS t (app_id, channel, stream_id, head_serial, total_bytes)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (app_id, channel) DO UPDATE
        SET head_serial = t.head_serial + excluded.head_serial, total_bytes = t.total_bytes + excluded.total_bytes
    RETURNING head_serial, stream_id, total_bytes
)
INSERT INTO pushwire_messages (app_id, channel, serial, stream_id, event, data, name, user_id, tags,
                               message_id, extras, published_at_ms, size_bytes, cum_bytes, kind, mutable)
SELECT $1, $2, s.head_serial - $4 + u.ord, s.stream_id, u.event, u.data, u.name, u.user_id, u.tags::json,
       u.message_id, u.extras, u.pub, u.size, s.total_bytes - $5 + u.cum, u.kind, u.mutable
FROM s, unnest($6::bytea[], $7::bytea[], $8::bytea[], $9::bytea[], $10::text[], $11::bytea[], $12::bytea[],
               $13::bigint[], $14::integer[], $15::bigint[], $16::smallint[], $17::bytea[])
     WITH ORDINALITY AS u(event, data, name, user_id, tags, message_id, extras, pub, size, cum, kind, mutable, ord)
RETURNING serial, stream_id`

// commitBatch stores gs in one round trip and one transaction and tells every append its
// outcome.
func (p *Postgres) commitBatch(gs []group) {
	sort.Slice(gs, func(i, j int) bool {
		a, b := gs[i].cq.key, gs[j].cq.key
		if a.app != b.app {
			return a.app < b.app
		}
		return a.channel < b.channel
	})
	// Appends whose caller gave up before the batch left are not sent.
	live := gs[:0:0]
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
		}
	}
	if len(live) == 0 {
		return
	}
	b := &pgx.Batch{}
	for _, g := range live {
		if err := queueGroup(b, g); err != nil {
			for _, q := range g.items {
				q.done <- err
			}
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.QueryTimeout)
	defer cancel()
	br := p.pool.SendBatch(ctx, b)
	type result struct {
		first  int64
		stream string
	}
	res := make([]result, len(live))
	var err error
	for i, g := range live {
		var rows pgx.Rows
		rows, err = br.Query()
		if err != nil {
			break
		}
		first := int64(-1)
		var stream string
		for rows.Next() {
			var s int64
			if err = rows.Scan(&s, &stream); err != nil {
				break
			}
			if first < 0 || s < first {
				first = s
			}
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
		if err == nil && first < 0 {
			err = fmt.Errorf("no rows stored for %d messages", len(g.items))
		}
		if err != nil {
			break
		}
		res[i] = result{first, stream}
	}
	if cerr := br.Close(); err == nil {
		err = cerr // the commit happens at the batch's Sync
	}
	if err != nil {
		err = unavailable(ctx, err)
		for _, g := range live {
			for _, q := range g.items {
				q.done <- fmt.Errorf("history: append %s: %w", q.msg.Channel, err)
			}
		}
		return
	}
	for i, g := range live {
		for j, q := range g.items {
			q.msg.Serial, q.msg.StreamID = uint64(res[i].first)+uint64(j), res[i].stream
		}
		last := g.items[len(g.items)-1].msg
		p.noteAppended(g.cq.key.app, g.cq.key.channel, last.StreamID, last.Serial)
		for _, q := range g.items {
			q.done <- nil
		}
	}
}

// queueGroup adds the statement storing one channel's messages to b.
func queueGroup(b *pgx.Batch, g group) error {
	n := len(g.items)
	events, datas, names, users, ids, extras, muts := make([][]byte, n), make([][]byte, n), make([][]byte, n),
		make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n)
	tags := make([]*string, n)
	pubs, cums := make([]int64, n), make([]int64, n)
	sizes := make([]int32, n)
	kinds := make([]int16, n)
	var total int64
	for i, q := range g.items {
		m := q.msg
		if len(m.Tags) > 0 {
			t, err := json.Marshal(m.Tags)
			if err != nil {
				return fmt.Errorf("history: append %s: tags: %w", m.Channel, err)
			}
			s := string(t)
			tags[i] = &s
		}
		data := m.Data
		if data == nil {
			data = []byte{}
		}
		if m.Mutable != nil {
			kinds[i] = 1
			if m.IsMutation() {
				kinds[i] = 2
			}
		}
		size := msgBytes(m)
		total += size
		events[i], datas[i], names[i], users[i], ids[i] = []byte(m.Event), data, []byte(m.Name), []byte(m.UserID), []byte(m.MessageID)
		extras[i], muts[i] = nullBytes(m.Extras), protocol.MarshalMutable(m.Mutable)
		pubs[i], sizes[i], cums[i] = m.PublishedAtMs, int32(size), total
	}
	b.Queue(appendManySQL, g.cq.key.app, g.cq.key.channel, protocol.NewUUID(), int64(n), total,
		events, datas, names, users, tags, ids, extras, pubs, sizes, cums, kinds, muts)
	return nil
}

var _ channels.PipelinedHistory = (*Postgres)(nil)
