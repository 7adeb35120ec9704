package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Idempotency remembers the publish idempotency keys of each app for a window, so that a
// retried publish delivers nothing twice and gets the first answer back. MemoryIdempotency
// is the single-node implementation; a cluster shares one through its store.
type Idempotency interface {
	// Claim reserves key for ttl. It returns the stored answer when a publish with this key
	// already completed (done), claimed=true when the caller now owns the key and must
	// Complete or Release it, and neither while another request holds it.
	Claim(ctx context.Context, appID, key string, ttl time.Duration) (answer []byte, done, claimed bool, err error)
	// Complete stores the answer of the publish that claimed key.
	Complete(ctx context.Context, appID, key string, answer []byte, ttl time.Duration) error
	// Release forgets a claimed key whose publish failed, so a retry can publish.
	Release(ctx context.Context, appID, key string) error
}

// MemoryIdempotency is an in-process Idempotency bounded to MaxKeys entries (the oldest go
// first when it is full). The zero value is not usable; call NewMemoryIdempotency.
type MemoryIdempotency struct {
	now     func() time.Time
	maxKeys int

	mu      sync.Mutex
	entries map[string]*idemEntry
	order   []string // keys in claim order, for expiry and eviction
	head    int
}

type idemEntry struct {
	answer  []byte
	done    bool
	expires time.Time
}

// NewMemoryIdempotency returns an empty store; now defaults to time.Now and maxKeys (0) to
// 1,000,000.
func NewMemoryIdempotency(now func() time.Time, maxKeys int) *MemoryIdempotency {
	if now == nil {
		now = time.Now
	}
	if maxKeys <= 0 {
		maxKeys = 1_000_000
	}
	return &MemoryIdempotency{now: now, maxKeys: maxKeys, entries: map[string]*idemEntry{}}
}

func idemID(appID, key string) string { return appID + "\x00" + key }

// Claim implements Idempotency.
func (m *MemoryIdempotency) Claim(_ context.Context, appID, key string, ttl time.Duration) ([]byte, bool, bool, error) {
	now := m.now()
	id := idemID(appID, key)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(now)
	if e, ok := m.entries[id]; ok && now.Before(e.expires) {
		if e.done {
			return e.answer, true, false, nil
		}
		return nil, false, false, nil
	}
	m.entries[id] = &idemEntry{expires: now.Add(ttl)}
	m.order = append(m.order, id)
	return nil, false, true, nil
}

// Complete implements Idempotency.
func (m *MemoryIdempotency) Complete(_ context.Context, appID, key string, answer []byte, ttl time.Duration) error {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.entries[idemID(appID, key)]; ok {
		e.answer, e.done, e.expires = answer, true, now.Add(ttl)
	}
	return nil
}

// Release implements Idempotency.
func (m *MemoryIdempotency) Release(_ context.Context, appID, key string) error {
	m.mu.Lock()
	delete(m.entries, idemID(appID, key))
	m.mu.Unlock()
	return nil
}

// expireLocked drops expired entries from the front of the claim order, and the oldest
// ones while the store is over its bound.
func (m *MemoryIdempotency) expireLocked(now time.Time) {
	for m.head < len(m.order) {
		id := m.order[m.head]
		if e, ok := m.entries[id]; ok {
			if now.Before(e.expires) && len(m.entries) < m.maxKeys {
				break
			}
			delete(m.entries, id)
		}
		m.order[m.head] = ""
		m.head++
	}
	if m.head > 1024 && m.head*2 > len(m.order) {
		m.order = append(m.order[:0], m.order[m.head:]...)
		m.head = 0
	}
}

// idemWaits is how often, and how long apart, a request polls a key another request holds.
const (
	idemWaits    = 6
	idemWaitStep = 50 * time.Millisecond
)

// claimKey claims a publish's idempotency key. It returns claimed=true when the caller must
// publish (then Complete or Release); otherwise it has answered: the stored answer of the
// first publish (200), 409 while another request holds the key, 503 when the store fails.
func (a *api) claimKey(w http.ResponseWriter, r *http.Request, appID, key string, ttl time.Duration) bool {
	for i := 0; ; i++ {
		answer, done, claimed, err := a.idem.Claim(r.Context(), appID, key, ttl)
		switch {
		case err != nil:
			a.log.Warn("idempotency store failed", zap.String("app_id", appID), zap.String("op", "claim"), zap.Error(err))
			writeError(w, http.StatusServiceUnavailable, "service_unavailable", "Idempotency store unavailable: retry later")
			return false
		case done:
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(answer)
			return false
		case claimed:
			return true
		}
		if i == idemWaits {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusConflict, "idempotency_in_progress", "A publish with this idempotency key is in progress: retry later")
			return false
		}
		select {
		case <-r.Context().Done():
			return false
		case <-time.After(idemWaitStep):
		}
	}
}

// completeKey stores the answer of the publish that claimed key. A store error is logged
// (the publish itself succeeded; a retry within the claim's TTL then waits for it to lapse
// rather than publishing twice).
func (a *api) completeKey(ctx context.Context, appID, key string, answer []byte, ttl time.Duration) {
	if err := a.idem.Complete(ctx, appID, key, answer, ttl); err != nil {
		a.log.Warn("idempotency store failed", zap.String("app_id", appID), zap.String("op", "complete"), zap.Error(err))
	}
}

// releaseKey frees a claimed key whose publish did not happen, so a retry can publish. A
// store error is logged (the claim then lapses with its TTL).
func (a *api) releaseKey(ctx context.Context, appID, key string) {
	if err := a.idem.Release(ctx, appID, key); err != nil {
		a.log.Warn("idempotency store failed", zap.String("app_id", appID), zap.String("op", "release"), zap.Error(err))
	}
}
