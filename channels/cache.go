package channels

import (
	"time"

	"github.com/pushwire/pushwire/protocol"
)

type cacheEntry struct {
	frame   []byte // the V1 wire form of the last event
	v2      []byte // its V2 wire form
	expires time.Time
}

// storeCache keeps the last event of a cache channel. Callers hold the channel's shard lock
// (read) or the channel's lock, so subscribers see either the old or the new entry, never
// a gap.
func (a *appState) storeCache(name string, v1, v2 []byte) {
	now := a.hub.now()
	e := cacheEntry{frame: v1, v2: v2, expires: now.Add(a.cfg.CacheTTL.D())}
	a.cacheMu.Lock()
	a.cache[name] = e
	if len(a.cache)%256 == 0 {
		for k, e := range a.cache {
			if now.After(e.expires) {
				delete(a.cache, k)
			}
		}
	}
	a.cacheMu.Unlock()
}

// cachedFrame returns the cached event of a cache channel in version v's form, if one is
// fresh.
func (a *appState) cachedFrame(name string, v protocol.Version) ([]byte, bool) {
	now := a.hub.now()
	a.cacheMu.Lock()
	defer a.cacheMu.Unlock()
	e, ok := a.cache[name]
	if !ok || !now.Before(e.expires) {
		return nil, false
	}
	if v == protocol.V2 {
		return e.v2, true
	}
	return e.frame, true
}

func (a *appState) cached(name string) ([]byte, time.Duration, bool) {
	now := a.hub.now()
	a.cacheMu.Lock()
	defer a.cacheMu.Unlock()
	e, ok := a.cache[name]
	if !ok {
		return nil, 0, false
	}
	if !now.Before(e.expires) {
		delete(a.cache, name)
		return nil, 0, false
	}
	return e.frame, e.expires.Sub(now), true
}
