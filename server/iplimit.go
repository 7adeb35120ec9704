package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// ipLimiterMaxEntries bounds the addresses an ipLimiter tracks at once.
const ipLimiterMaxEntries = 1 << 17

// ipLimiter is a token bucket per client address: each bucket holds up to perMinute tokens,
// refills at perMinute per minute and a connection takes one. A bucket idle for a minute is
// full again, so it is forgotten; memory is bounded by the addresses seen in the last minute
// and, past maxEntries, by evicting arbitrary entries.
type ipLimiter struct {
	perMinute  int
	now        func() time.Time
	maxEntries int

	mu        sync.Mutex
	buckets   map[string]ipBucket
	lastSweep time.Time
}

type ipBucket struct {
	tokens float64
	last   time.Time
}

func newIPLimiter(perMinute int, now func() time.Time) *ipLimiter {
	return &ipLimiter{perMinute: perMinute, now: now, maxEntries: ipLimiterMaxEntries, buckets: map[string]ipBucket{}, lastSweep: now()}
}

// allow takes a token for key and reports whether there was one.
func (l *ipLimiter) allow(key string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= time.Minute {
		l.sweep(now)
	}
	capacity := float64(l.perMinute)
	b, ok := l.buckets[key]
	if ok {
		if elapsed := now.Sub(b.last); elapsed > 0 {
			b.tokens = min(capacity, b.tokens+elapsed.Minutes()*capacity)
			b.last = now
		}
	} else {
		if len(l.buckets) >= l.maxEntries {
			l.sweep(now)
			for k := range l.buckets {
				if len(l.buckets) < l.maxEntries {
					break
				}
				delete(l.buckets, k)
			}
		}
		b = ipBucket{tokens: capacity, last: now}
	}
	allowed := b.tokens >= 1
	if allowed {
		b.tokens--
	}
	l.buckets[key] = b
	return allowed
}

// sweep forgets the buckets idle for a minute or more: they are full, as if never seen.
func (l *ipLimiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if now.Sub(b.last) >= time.Minute {
			delete(l.buckets, k)
		}
	}
	l.lastSweep = now
}

// len returns the number of tracked addresses.
func (l *ipLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// clientKey returns the limiter key of a request's client: the first X-Forwarded-For address
// when trusted and valid, else the peer address. IPv6 addresses count per /64, the block one
// subscriber usually holds.
func clientKey(r *http.Request, trustForwardedFor bool) string {
	if trustForwardedFor {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			first, _, _ := strings.Cut(xff, ",")
			if addr, err := netip.ParseAddr(strings.TrimSpace(first)); err == nil {
				return addrKey(addr)
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		return addrKey(addr)
	}
	return host
}

func addrKey(addr netip.Addr) string {
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		return netip.PrefixFrom(addr, 64).Masked().String()
	}
	return addr.String()
}
