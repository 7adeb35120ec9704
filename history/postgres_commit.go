package history

import (
	"context"
	"encoding/json"
	"fmt"

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

// commitSQL stores a whole batch in one statement. g has one row per channel (its message
// count n and byte total); the upsert bumps each channel's stream head by n, in key order
// (the row locks that order a channel's appends across nodes until commit are always taken
// in that order, so overlapping batches of two nodes cannot deadlock); the messages take the
// n serials ending at the new head in array order, and cum_bytes is the stream's running
// total just after each. It answers each channel's first serial and stream id, and the
// number of messages stored.
const commitSQL = `
WITH g AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])
        WITH ORDINALITY AS g(app_id, channel, stream_id, n, bytes, gi)
), s AS (
    INSERT INTO pushwire_streams AS t (app_id, channel, stream_id, head_serial, total_bytes)
    SELECT app_id, channel, stream_id, n, bytes FROM g ORDER BY app_id, channel
    ON CONFLICT (app_id, channel) DO UPDATE
        SET head_serial = t.head_serial + excluded.head_serial, total_bytes = t.total_bytes + excluded.total_bytes
    RETURNING app_id, channel, head_serial, stream_id, total_bytes
), sg AS (
    SELECT g.gi, g.n, g.bytes, s.app_id, s.channel, s.head_serial, s.stream_id, s.total_bytes
    FROM s JOIN g ON g.app_id = s.app_id AND g.channel = s.channel
), m AS (
    INSERT INTO pushwire_messages (app_id, channel, serial, stream_id, event, data, name, user_id, tags,
                                   message_id, extras, published_at_ms, size_bytes, cum_bytes, kind, mutable)
    SELECT sg.app_id, sg.channel, sg.head_serial - sg.n + u.pos, sg.stream_id, u.event, u.data, u.name, u.user_id,
           u.tags::json, u.message_id, u.extras, u.pub, u.size, sg.total_bytes - sg.bytes + u.cum, u.kind, u.mutable
    FROM unnest($6::bigint[], $7::bigint[], $8::bytea[], $9::bytea[], $10::bytea[], $11::bytea[], $12::text[],
                $13::bytea[], $14::bytea[], $15::bigint[], $16::integer[], $17::bigint[], $18::smallint[], $19::bytea[])
         AS u(grp, pos, event, data, name, user_id, tags, message_id, extras, pub, size, cum, kind, mutable)
    JOIN sg ON sg.gi = u.grp
    RETURNING 1
)
SELECT sg.gi, sg.head_serial - sg.n + 1, sg.stream_id, (SELECT count(*) FROM m) FROM sg`

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
	args, err := commitArgs(live, total)
	if err != nil {
		fail(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.QueryTimeout)
	defer cancel()
	type result struct {
		first  int64
		stream string
	}
	res := make([]result, len(live))
	seen := 0
	rows, err := p.pool.Query(ctx, commitSQL, args...)
	if err == nil {
		for rows.Next() {
			var gi, first, stored int64
			var stream string
			if err = rows.Scan(&gi, &first, &stream, &stored); err != nil {
				break
			}
			if gi < 1 || gi > int64(len(live)) || stored != int64(total) {
				err = fmt.Errorf("group commit: channel %d of %d, %d of %d messages stored", gi, len(live), stored, total)
				break
			}
			res[gi-1] = result{first, stream}
			seen++
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
		if err == nil && seen != len(live) {
			err = fmt.Errorf("group commit: %d of %d channels answered", seen, len(live))
		}
	}
	if err != nil {
		fail(unavailable(ctx, err))
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

// commitArgs builds commitSQL's arrays: per channel, then per message.
func commitArgs(live []group, total int) ([]any, error) {
	ng := len(live)
	apps, chans, streams := make([]string, ng), make([]string, ng), make([]string, ng)
	counts, bytes := make([]int64, ng), make([]int64, ng)
	grp, pos := make([]int64, 0, total), make([]int64, 0, total)
	events, datas, names, users, ids, extras, muts := make([][]byte, 0, total), make([][]byte, 0, total), make([][]byte, 0, total),
		make([][]byte, 0, total), make([][]byte, 0, total), make([][]byte, 0, total), make([][]byte, 0, total)
	tags := make([]*string, 0, total)
	pubs, cums := make([]int64, 0, total), make([]int64, 0, total)
	sizes := make([]int32, 0, total)
	kinds := make([]int16, 0, total)
	for gi, g := range live {
		apps[gi], chans[gi], streams[gi], counts[gi] = g.cq.key.app, g.cq.key.channel, protocol.NewUUID(), int64(len(g.items))
		var sum int64
		for j, q := range g.items {
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
			grp, pos = append(grp, int64(gi+1)), append(pos, int64(j+1))
			events, datas, names, users = append(events, []byte(m.Event)), append(datas, data), append(names, []byte(m.Name)), append(users, []byte(m.UserID))
			tags, ids, extras = append(tags, tag), append(ids, []byte(m.MessageID)), append(extras, nullBytes(m.Extras))
			pubs, sizes, cums = append(pubs, m.PublishedAtMs), append(sizes, int32(size)), append(cums, sum)
			kinds, muts = append(kinds, kind), append(muts, protocol.MarshalMutable(m.Mutable))
		}
		bytes[gi] = sum
	}
	return []any{apps, chans, streams, counts, bytes, grp, pos, events, datas, names, users, tags, ids, extras, pubs, sizes, cums, kinds, muts}, nil
}

var _ channels.PipelinedHistory = (*Postgres)(nil)
