package channels

// IndexSizes reports how many entries the app's user indexes and channel shards hold, so
// tests can prove that everything is cleaned up once every connection is gone.
func (h *Hub) IndexSizes(appID string) (users, signedIn, watchers, watchlists, channels int) {
	app := h.byID[appID]
	app.usersMu.Lock()
	users, signedIn, watchers, watchlists = len(app.users), len(app.signedIn), len(app.watchers), len(app.watchlists)
	app.usersMu.Unlock()
	for i := range app.shards {
		s := &app.shards[i]
		s.mu.RLock()
		channels += len(s.channels)
		s.mu.RUnlock()
	}
	return users, signedIn, watchers, watchlists, channels
}

// Encodings reports how many wire encodings fan-outs have made so far (V2 JSON builds and
// binary transcodings), so tests and benchmarks can count them per publish.
func Encodings() int64 { return encodings.Load() }
