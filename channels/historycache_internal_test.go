package channels

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"testing"

	"github.com/pushwire/pushwire/protocol"
)

// liveHeap is the heap the last full collection found live (runtime/metrics), after one.
func liveHeap() int64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// TestPageCacheBounded: 20,000 distinct pages of 4 KiB (80 MB offered) into a 2 MiB cache
// keep its count within the bound, and the live heap grows by less than twice the bound;
// the most recent pages are the ones kept, a frame over an eighth of the bound is not cached.
func TestPageCacheBounded(t *testing.T) {
	const max = 2 << 20
	c := newPageCache(max)
	key := func(i int) pageKey {
		return pageKey{app: "app", secret: "s", channel: fmt.Sprintf("channel-%d", i), st: protocol.StreamState{StreamID: "stream", HeadSerial: uint64(i)}}
	}
	before := liveHeap()
	for i := range 20000 {
		c.put(key(i), make([]byte, 4<<10))
	}
	grew := liveHeap() - before
	entries, bytes := c.size()
	t.Logf("%d entries, %d bytes counted; live heap +%.2f MB", entries, bytes, float64(grew)/(1<<20))
	if bytes > max || entries*(4<<10) > max {
		t.Fatalf("%d entries, %d bytes: over %d", entries, bytes, max)
	}
	if grew > 2*max {
		t.Fatalf("live heap grew by %d bytes for a %d-byte cache", grew, max)
	}
	if _, ok := c.get(key(19999)); !ok {
		t.Fatal("the latest page was dropped")
	}
	if _, ok := c.get(key(0)); ok {
		t.Fatal("the oldest page is still there")
	}
	c.put(key(-1), make([]byte, max/8))
	if _, ok := c.get(key(-1)); ok {
		t.Fatal("a frame over an eighth of the cache was cached")
	}
	runtime.KeepAlive(c)
}
