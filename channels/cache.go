package channels

import "time"

type cacheEntry struct {
	frame   []byte // the V1 wire form of the last event
	expires time.Time
}

// storeCache keeps the last event of a cache channel. Callers hold the channel's shard lock
// (read) or the channel's lock, so subscribers see either the old or the new entry, never
// a gap.
func (a *appState) storeCache(name string, frame []byte) {
	now := a.hub.now()
	a.cacheMu.Lock()
	a.cache[name] = cacheEntry{frame: frame, expires: now.Add(a.cfg.CacheTTL.D())}
	if len(a.cache)%256 == 0 {
		for k, e := range a.cache {
			if now.After(e.expires) {
				delete(a.cache, k)
			}
		}
	}
	a.cacheMu.Unlock()
}

// cachedFrame returns the cached event of a cache channel, if one is fresh.
func (a *appState) cachedFrame(name string) ([]byte, bool) {
	frame, _, ok := a.cached(name)
	return frame, ok
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
