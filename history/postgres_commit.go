package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// Group commit of appends, pipelined.
//
// Append and AppendAsync do not talk to the database themselves: they queue the message with
// one of commitPipes committers — always the same one for a channel (a hash of app and
// channel) — and the committer sends what is queued, across its channels, as one group
// commit: bumpSQL then storeJoinSQL then a Sync, one implicit transaction. bumpSQL moves each
// channel's pushwire_streams row up by its message count (taking the row lock that orders
// the channel's appends across nodes until commit) and storeJoinSQL inserts the messages at
// the serials just below the new head. So a batch either commits whole or not at all:
// serials have no gaps and no duplicates, a channel's serials follow its queue order, and
// nobody learns a serial before its commit. Rows are locked in key order, so two nodes
// committing overlapping batches cannot deadlock.
//
// Each committer holds one connection in pipeline mode while it has work and keeps up to
// pipelineDepth group commits in flight on it: once a full batch is queued (pipelineBatch)
// it sends it — even if it carries later messages of a channel already in flight — without
// waiting for the previous one's answer, so a backlog keeps Postgres busy instead of waiting
// for the server between transactions; a smaller batch waits for the answer and gathers. Postgres runs a
// connection's transactions one after the other in the order they were sent, each ending at
// its own Sync, so serial order per channel holds across in-flight batches. Answers are read
// in order and each append is told its outcome only once its batch's Sync reported the
// commit. A batch that fails (a statement error: its transaction rolls back at its Sync)
// fails only its own appends; the batches after it run as they would have without it, taking
// the serials after the last committed one. A connection that breaks or stops answering
// within the commit timeout fails every batch in flight on it (ErrHistoryUnavailable: their
// outcome is unknown, as for any commit whose answer is lost) and the committer goes on with
// a fresh connection.
//
// A batch carrying the create of a mutable message (aggregate and version rows too) is one
// explicit transaction on the pool, sent once every earlier batch of its committer has been
// answered.

// maxCommitBatch bounds the messages of one group commit.
const maxCommitBatch = 4096

// maxChannelShare bounds one channel's messages in one group commit: they are delivered
// together once it commits, and a burst larger than a connection's write queue (1,024
// frames by default) would close its subscribers as too slow after a database hiccup.
const maxChannelShare = 512

// commitTimeoutFactor × QueryTimeout bounds one group commit (15 s by default) from the
// moment it is sent: a database that stalls for a few seconds delays a batch without
// failing it.
const commitTimeoutFactor = 3

// commitPipes is the number of committers, each with its own connection.
const commitPipes = 4

// pipelineDepth is the most group commits a committer has in flight on its connection.
const pipelineDepth = 4

// pipelineBatch is the fewest queued appends a committer sends while a batch of it is in
// flight. Below it, the appends wait for the answer and go in one batch with what arrives
// meanwhile: every commit costs Postgres a WAL flush, on a connection one after the other,
// so small batches in flight would lower what a connection takes; at or above it (a
// channel's full share) the batch is as large as it gets and is sent at once.
const pipelineBatch = maxChannelShare

// Names of the group commit's statements, prepared on each connection a committer uses.
const (
	bumpStmt  = "pushwire_group_bump"
	storeStmt = "pushwire_group_store"
)

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
}

// pipe is one committer: the queues of its channels (guarded by Postgres.qmu) and its wake-up.
type pipe struct {
	p      *Postgres
	queues map[streamKey]*chanQueue
	ready  []*chanQueue // channels with queued appends, in turn
	n      int          // appends queued
	wake   chan struct{}
}

func newPipes(p *Postgres) []*pipe {
	ps := make([]*pipe, commitPipes)
	for i := range ps {
		ps[i] = &pipe{p: p, queues: map[streamKey]*chanQueue{}, wake: make(chan struct{}, 1)}
	}
	return ps
}

// pipeFor is the committer of a channel.
func (p *Postgres) pipeFor(k streamKey) *pipe {
	var h maphash.Hash
	h.SetSeed(p.pipeSeed)
	h.WriteString(k.app)
	h.WriteByte(0)
	h.WriteString(k.channel)
	return p.pipes[h.Sum64()%uint64(len(p.pipes))]
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
	pp := p.pipeFor(k)
	p.qmu.Lock()
	if p.closed {
		p.qmu.Unlock()
		q.done <- fmt.Errorf("history: append %s: store closed", msg.Channel)
		return q.done
	}
	cq := pp.queues[k]
	if cq == nil {
		cq = &chanQueue{key: k}
		pp.queues[k] = cq
		pp.ready = append(pp.ready, cq)
	}
	if cq.tail == nil {
		cq.head = q
	} else {
		cq.tail.next = q
	}
	cq.tail = q
	pp.n++
	p.qmu.Unlock()
	select {
	case pp.wake <- struct{}{}:
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
	key   streamKey
	items []*queued
}

// take removes up to maxCommitBatch queued appends of the committer's channels, at most
// maxChannelShare of each channel, each channel at most once; a channel with appends left
// goes to the back of the turn. Callers hold p.qmu.
func (pp *pipe) take() []group {
	var out []group
	var again []*chanQueue
	n := 0
	for len(pp.ready) > 0 && n < maxCommitBatch {
		cq := pp.ready[0]
		pp.ready[0] = nil
		pp.ready = pp.ready[1:]
		g := group{key: cq.key}
		for cq.head != nil && n < maxCommitBatch && len(g.items) < maxChannelShare {
			q := cq.head
			cq.head, q.next = q.next, nil
			g.items = append(g.items, q)
			n++
		}
		pp.n -= len(g.items)
		if cq.head == nil {
			cq.tail = nil
			delete(pp.queues, cq.key)
		} else {
			again = append(again, cq)
		}
		out = append(out, g)
	}
	pp.ready = append(pp.ready, again...)
	if len(pp.ready) == 0 {
		pp.ready = nil // let a long backlog's array go
	}
	return out
}

// run is one committer: it sends batches, up to pipelineDepth in flight, until the store
// closes, committing what was queued before.
func (pp *pipe) run() {
	p := pp.p
	defer p.done.Done()
	var s *session
	var inflight []*batch
	// broken fails every batch in flight with err and drops the connection.
	broken := func(err error) {
		for _, b := range inflight {
			b.fail(err)
		}
		inflight = nil
		s.discard()
		s = nil
	}
	for {
		if len(inflight) < pipelineDepth {
			p.qmu.Lock()
			var gs []group
			if len(inflight) == 0 || pp.n >= pipelineBatch {
				gs = pp.take()
			}
			closed := p.closed
			p.qmu.Unlock()
			if len(gs) > 0 {
				b := p.newBatch(gs)
				switch {
				case b == nil:
				case b.creates:
					// After every earlier batch of these channels.
					for len(inflight) > 0 {
						first := inflight[0]
						inflight = inflight[1:]
						if err := s.receive(first); err != nil {
							first.fail(err)
							broken(err)
						}
					}
					p.commitTx(b)
				default:
					if s == nil {
						var err error
						if s, err = p.openSession(); err != nil {
							b.fail(err)
							continue
						}
					}
					vals, err := s.encode(b)
					if err != nil {
						b.fail(err)
						continue
					}
					if err := s.send(vals); err != nil {
						inflight = append(inflight, b)
						broken(err)
						continue
					}
					b.deadline = time.Now().Add(commitTimeoutFactor * p.opts.QueryTimeout)
					inflight = append(inflight, b)
				}
				continue
			}
			if len(inflight) == 0 {
				if s != nil {
					s.release()
					s = nil
				}
				if closed {
					return
				}
				select {
				case <-pp.wake:
				case <-p.closing:
				}
				continue
			}
		}
		b := inflight[0]
		inflight[0] = nil
		inflight = inflight[1:]
		if err := s.receive(b); err != nil {
			b.fail(err)
			broken(err)
		}
	}
}

// session is a committer's connection in pipeline mode.
type session struct {
	conn        *pgxpool.Conn
	pl          *pgconn.Pipeline
	cancel      context.CancelFunc
	ctx         context.Context
	bump, store *pgconn.StatementDescription
	timeout     time.Duration
}

// openSession acquires a connection, prepares the group commit's statements on it (once per
// connection) and puts it in pipeline mode.
func (p *Postgres) openSession() (*session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.QueryTimeout)
	defer cancel()
	c, err := p.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("group commit: %w", unavailable(ctx, err))
	}
	bump, err := c.Conn().Prepare(ctx, bumpStmt, bumpSQL)
	var store *pgconn.StatementDescription
	if err == nil {
		store, err = c.Conn().Prepare(ctx, storeStmt, storeJoinSQL)
	}
	if err != nil {
		c.Release()
		return nil, fmt.Errorf("group commit: prepare: %w", unavailable(ctx, err))
	}
	sctx, scancel := context.WithCancel(context.Background())
	s := &session{conn: c, cancel: scancel, ctx: sctx, bump: bump, store: store, timeout: commitTimeoutFactor * p.opts.QueryTimeout}
	s.pl = c.Conn().PgConn().StartPipeline(sctx)
	return s, nil
}

// release ends pipeline mode and gives the connection back to the pool (nothing in flight).
func (s *session) release() {
	if err := s.pl.Close(); err != nil {
		s.discard()
		return
	}
	s.cancel()
	s.conn.Release()
}

// discard closes the connection: its pipeline's state is unknown.
func (s *session) discard() {
	if s == nil {
		return
	}
	s.cancel()
	_ = s.pl.Close()
	c := s.conn.Hijack()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.Close(ctx)
}

// failed wraps an error of the connection: the commit timeout if the session's watchdog
// fired, else the connection's error; both are ErrHistoryUnavailable.
func (s *session) failed(err error) error {
	if s.ctx.Err() != nil {
		return fmt.Errorf("%w: group commit: no answer within %v", channels.ErrHistoryUnavailable, s.timeout)
	}
	return fmt.Errorf("group commit: %w", unavailable(context.Background(), err))
}

// encode encodes a batch's arguments for the prepared statements.
func (s *session) encode(b *batch) (encoded, error) {
	var out encoded
	m := s.conn.Conn().TypeMap()
	for i, st := range []struct {
		sd   *pgconn.StatementDescription
		args []any
	}{{s.bump, b.bumpArgs()}, {s.store, b.cols.joinArgs()}} {
		if len(st.sd.ParamOIDs) != len(st.args) {
			return out, fmt.Errorf("group commit: %s takes %d arguments, not %d", st.sd.Name, len(st.sd.ParamOIDs), len(st.args))
		}
		vals, fmts := make([][]byte, len(st.args)), make([]int16, len(st.args))
		for j, a := range st.args {
			oid := st.sd.ParamOIDs[j]
			fmts[j] = m.FormatCodeForOID(oid)
			v, err := m.Encode(oid, fmts[j], a, nil)
			if err != nil {
				return out, fmt.Errorf("group commit: %s argument %d: %w", st.sd.Name, j+1, err)
			}
			vals[j] = v
		}
		out.vals[i], out.fmts[i] = vals, fmts
	}
	return out, nil
}

// encoded is a batch's arguments of bumpSQL and storeJoinSQL, encoded, and their formats.
type encoded struct {
	vals [2][][]byte
	fmts [2][]int16
}

// send queues a batch's two statements and its Sync on the pipeline and writes them, within
// the commit timeout. An error means the connection is unusable.
func (s *session) send(e encoded) error {
	t := time.AfterFunc(s.timeout, s.cancel)
	defer t.Stop()
	s.pl.SendQueryPrepared(bumpStmt, e.vals[0], e.fmts[0], nil)
	s.pl.SendQueryPrepared(storeStmt, e.vals[1], e.fmts[1], nil)
	if err := s.pl.Sync(); err != nil {
		return s.failed(err)
	}
	return nil
}

// receive reads the answer to b, the oldest batch in flight, up to its Sync, and tells its
// appends the outcome. A statement's error fails b only; an error of the connection, or no
// answer by b's deadline, is returned (b not told: the caller fails it and everything else in
// flight).
func (s *session) receive(b *batch) error {
	t := time.AfterFunc(time.Until(b.deadline), s.cancel)
	defer t.Stop()
	var stmtErr error
	step := 0
	for {
		res, err := s.pl.GetResults()
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) { // the rest up to the Sync is skipped; the Sync follows
				if stmtErr == nil {
					stmtErr = err
				}
				continue
			}
			return s.failed(err)
		}
		switch r := res.(type) {
		case *pgconn.PipelineSync:
			if stmtErr == nil && step != 2 {
				stmtErr = fmt.Errorf("group commit: %d of 2 statements answered", step)
			}
			if stmtErr != nil {
				b.fail(unavailable(context.Background(), stmtErr))
			} else {
				b.succeed()
			}
			return nil
		case *pgconn.ResultReader:
			var err error
			if step == 0 {
				err = b.readHeadsText(r)
			} else {
				var tag pgconn.CommandTag
				if tag, err = r.Close(); err == nil && tag.RowsAffected() != int64(b.total) {
					err = fmt.Errorf("group commit: %d of %d messages stored", tag.RowsAffected(), b.total)
				}
			}
			step++
			if err != nil {
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) && s.conn.Conn().PgConn().IsClosed() {
					return s.failed(err)
				}
				if stmtErr == nil {
					stmtErr = err
				}
			}
		default:
			return s.failed(fmt.Errorf("unexpected pipeline result %T", res))
		}
	}
}

// head is a stream row after a batch's bump.
type head struct {
	serial int64
	stream string
	bytes  int64
}

// batch is one group commit.
type batch struct {
	p        *Postgres
	live     []group
	total    int
	cols     *columns
	creates  bool
	heads    []head
	index    map[streamKey]int
	streams  []string // a new stream id per channel, used if its row is created
	deadline time.Time
	filled   bool
}

// newBatch drops the appends whose caller gave up before their batch left and builds the
// batch's columns; nil if nothing is left.
func (p *Postgres) newBatch(gs []group) *batch {
	b := &batch{p: p}
	for _, g := range gs {
		items := g.items[:0:0]
		for _, q := range g.items {
			if err := q.ctx.Err(); err != nil {
				q.done <- fmt.Errorf("history: append %s: %w", q.msg.Channel, err)
				continue
			}
			items = append(items, q)
			b.creates = b.creates || q.agg != nil
		}
		if len(items) > 0 {
			b.live = append(b.live, group{key: g.key, items: items})
			b.total += len(items)
		}
	}
	if len(b.live) == 0 {
		return nil
	}
	cols, err := messageColumns(b.live, b.total)
	if err != nil {
		b.fail(err)
		return nil
	}
	b.cols = cols
	i := 0
	for _, g := range b.live {
		for range g.items {
			cols.apps[i], cols.chans[i] = g.key.app, g.key.channel
			i++
		}
	}
	b.heads = make([]head, len(b.live))
	b.index = make(map[streamKey]int, len(b.live))
	b.streams = make([]string, len(b.live))
	for gi, g := range b.live {
		b.index[g.key] = gi
		b.streams[gi] = protocol.NewUUID()
	}
	return b
}

// bumpArgs are bumpSQL's arguments.
func (b *batch) bumpArgs() []any {
	ng := len(b.live)
	apps, chans := make([]string, ng), make([]string, ng)
	counts := make([]int64, ng)
	for gi, g := range b.live {
		apps[gi], chans[gi], counts[gi] = g.key.app, g.key.channel, int64(len(g.items))
	}
	return []any{apps, chans, b.streams, counts, b.cols.groupBytes}
}

// fail tells every append of b the error.
func (b *batch) fail(err error) {
	for _, g := range b.live {
		for _, q := range g.items {
			q.done <- fmt.Errorf("history: append %s: %w", q.msg.Channel, err)
		}
	}
}

// setHead records a channel's stream row after the bump.
func (b *batch) setHead(k streamKey, h head) error {
	gi, ok := b.index[k]
	if !ok {
		return fmt.Errorf("group commit: unexpected stream %s/%s", k.app, k.channel)
	}
	b.heads[gi] = h
	return nil
}

// readHeads reads bumpSQL's answer through pgx.
func (b *batch) readHeads(rows pgx.Rows) error {
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var k streamKey
		var h head
		if err := rows.Scan(&k.app, &k.channel, &h.serial, &h.stream, &h.bytes); err != nil {
			return err
		}
		if err := b.setHead(k, h); err != nil {
			return err
		}
		seen++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if seen != len(b.live) {
		return fmt.Errorf("group commit: %d of %d streams answered", seen, len(b.live))
	}
	return nil
}

// readHeadsText reads bumpSQL's answer from the pipeline (text format).
func (b *batch) readHeadsText(r *pgconn.ResultReader) error {
	seen := 0
	var perr error
	for r.NextRow() {
		v := r.Values()
		if perr != nil {
			continue
		}
		if len(v) != 5 {
			perr = fmt.Errorf("group commit: %d columns in a stream row", len(v))
			continue
		}
		var h head
		var err1, err2 error
		h.serial, err1 = strconv.ParseInt(string(v[2]), 10, 64)
		h.bytes, err2 = strconv.ParseInt(string(v[4]), 10, 64)
		h.stream = string(v[3])
		if err := errors.Join(err1, err2); err != nil {
			perr = fmt.Errorf("group commit: stream row: %w", err)
			continue
		}
		if err := b.setHead(streamKey{string(v[0]), string(v[1])}, h); err != nil {
			perr = err
			continue
		}
		seen++
	}
	if _, err := r.Close(); err != nil {
		return err
	}
	if perr != nil {
		return perr
	}
	if seen != len(b.live) {
		return fmt.Errorf("group commit: %d of %d streams answered", seen, len(b.live))
	}
	return nil
}

// fill sets the serials, streams and byte positions that follow from each new head.
func (b *batch) fill() {
	if b.filled {
		return
	}
	b.filled = true
	cols := b.cols
	i := 0
	for gi, g := range b.live {
		n := int64(len(g.items))
		before := b.heads[gi].bytes - cols.groupBytes[gi]
		for j := range g.items {
			cols.serials[i], cols.streams[i] = b.heads[gi].serial-n+1+int64(j), b.heads[gi].stream
			cols.cums[i] += before
			i++
		}
	}
}

// succeed gives every append of the committed batch b its serial and stream and tells it.
func (b *batch) succeed() {
	b.fill()
	cols := b.cols
	i := 0
	for _, g := range b.live {
		for _, q := range g.items {
			q.msg.Serial, q.msg.StreamID = uint64(cols.serials[i]), cols.streams[i]
			if q.agg != nil {
				q.msg.Mutable.HistorySerial = q.msg.Serial
			}
			i++
		}
	}
	for _, g := range b.live {
		last := g.items[len(g.items)-1].msg
		b.p.noteAppended(g.key.app, g.key.channel, last.StreamID, last.Serial)
		for _, q := range g.items {
			q.done <- nil
		}
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

// commitTx stores b, which carries creates of mutable messages, in one explicit transaction
// on the pool, and tells every append its outcome.
func (p *Postgres) commitTx(b *batch) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeoutFactor*p.opts.QueryTimeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, bumpSQL, b.bumpArgs()...)
		if err != nil {
			return err
		}
		if err := b.readHeads(rows); err != nil {
			return err
		}
		b.fill()
		tag, err := tx.Exec(ctx, storeSQL, b.cols.args()...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != int64(b.total) {
			return fmt.Errorf("group commit: %d of %d messages stored", tag.RowsAffected(), b.total)
		}
		return p.storeCreates(ctx, tx, b.live, b.cols)
	})
	if err != nil {
		b.fail(unavailable(ctx, err))
		return
	}
	b.succeed()
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
