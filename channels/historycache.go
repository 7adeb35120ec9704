package channels

import (
	"container/list"
	"sync"

	"github.com/pushwire/pushwire/protocol"
)

// DefaultHistoryPageCacheBytes is Options.HistoryPageCacheBytes' default.
const DefaultHistoryPageCacheBytes = 8 << 20

// pageKey is everything a sockudo:channel_history frame depends on, so a cached frame is
// never stale: the app (and its secret, which signs and checks cursors), the channel, the
// request as normalized (direction, limit, bounds, cursor, the attach serial of until_attach)
// and the stream's state when it was read — its id, head serial, retained range and counts,
// and its degraded mark. A publish moves the head; so does every update, delete and append
// of a mutable message (each is a delivery in the stream: mutable.go), which is what makes
// a page's latest aggregates part of the head; a reset changes the stream id; retention and
// purges move the retained range. A frame read after the state was is at least as new as the
// state says, as an uncached read is.
type pageKey struct {
	app, secret, channel string
	req                  protocol.HistoryRequest
	attach               uint64
	st                   protocol.StreamState
	degraded             bool
	degradedSerial       uint64
}

// pageEntry is one cached frame.
type pageEntry struct {
	key   pageKey
	frame []byte
	cost  int64
}

// pageCache keeps recently sent channel_history frames, least recently used first out,
// within max bytes (frames and keys). Under a flood of identical requests for a busy
// channel's page, one read and one encoding serve every request until the channel moves.
// A frame is shared by the connections it is sent to and never modified.
type pageCache struct {
	max int64

	mu    sync.Mutex
	bytes int64
	byKey map[pageKey]*list.Element
	lru   list.List // of *pageEntry, most recent at the front
}

// pageEntryOverhead is about what an entry costs beyond its frame and key strings (the map
// slot, list element, entry and key structs).
const pageEntryOverhead = 256

func newPageCache(max int64) *pageCache {
	if max <= 0 {
		return nil
	}
	return &pageCache{max: max, byKey: map[pageKey]*list.Element{}}
}

// get returns the cached frame of k, if any.
func (c *pageCache) get(k pageKey) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[k]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*pageEntry).frame, true
}

// put caches frame under k, dropping the least recently used frames past max. A frame
// larger than an eighth of max is not cached.
func (c *pageCache) put(k pageKey, frame []byte) {
	if c == nil {
		return
	}
	cost := int64(len(frame)+len(k.app)+len(k.secret)+len(k.channel)+len(k.req.Cursor)+len(k.st.StreamID)) + pageEntryOverhead
	if cost > c.max/8 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byKey[k]; ok {
		return
	}
	c.byKey[k] = c.lru.PushFront(&pageEntry{key: k, frame: frame, cost: cost})
	c.bytes += cost
	for c.bytes > c.max {
		last := c.lru.Back()
		e := last.Value.(*pageEntry)
		c.lru.Remove(last)
		delete(c.byKey, e.key)
		c.bytes -= e.cost
	}
}

// size reports the entries and bytes held.
func (c *pageCache) size() (entries int, bytes int64) {
	if c == nil {
		return 0, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.bytes
}
