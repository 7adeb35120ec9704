package bytebudget

import "sync/atomic"

// Budget counts reserved bytes against a limit. The zero value and a nil *Budget are
// unlimited, so a component built without one behaves as before. Safe for concurrent use.
type Budget struct {
	limit    int64
	used     atomic.Int64
	refusals atomic.Int64
}

// New returns a budget of limit bytes; limit <= 0 means unlimited (only counted).
func New(limit int64) *Budget {
	if limit < 0 {
		limit = 0
	}
	return &Budget{limit: limit}
}

// TryReserve reserves n bytes and reports whether they fit. A refused reservation holds
// nothing and is counted in Refusals. n <= 0 always fits.
func (b *Budget) TryReserve(n int64) bool {
	if b == nil || n <= 0 {
		return true
	}
	if b.limit == 0 {
		b.used.Add(n)
		return true
	}
	for {
		cur := b.used.Load()
		if cur+n > b.limit {
			b.refusals.Add(1)
			return false
		}
		if b.used.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// Release returns n bytes reserved earlier with TryReserve.
func (b *Budget) Release(n int64) {
	if b == nil || n <= 0 {
		return
	}
	if b.used.Add(-n) < 0 {
		panic("bytebudget: released more than was reserved")
	}
}

// Used is the number of bytes reserved now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Limit is the cap in bytes, 0 when unlimited.
func (b *Budget) Limit() int64 {
	if b == nil {
		return 0
	}
	return b.limit
}

// Refusals counts the reservations refused since the budget was made.
func (b *Budget) Refusals() int64 {
	if b == nil {
		return 0
	}
	return b.refusals.Load()
}
