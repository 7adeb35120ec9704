package httpapi

import (
	"net/http"
	"time"

	"github.com/pushwire/pushwire/channels"
)

// Revocation limits: the default and longest time a revocation is kept.
const (
	defaultRevocationTTL = 24 * time.Hour
	maxRevocationTTL     = 30 * 24 * time.Hour
)

// postRevocation answers POST /apps/{appID}/revocations {jti?, client_id?, expires_at?,
// ttl_seconds?, reason?}: matching capability tokens are refused until the revocation ends
// (ttl_seconds wins over expires_at, a Unix time in seconds; default 24 h), and the app's
// connections using one are told (sockudo:token_expired 40160) and closed with 4009 now.
// The answer is {"revoked_jti":bool,"revoked_client_id":bool,"closed_connections":n}.
func (a *api) postRevocation(w http.ResponseWriter, r *http.Request) {
	s := signedOf(r)
	var b struct {
		JTI        string `json:"jti"`
		ClientID   string `json:"client_id"`
		ExpiresAt  *int64 `json:"expires_at"`
		TTLSeconds *int64 `json:"ttl_seconds"`
		Reason     string `json:"reason"`
	}
	if err := decodeJSON(s.body, &b); err != nil {
		fail(w, err)
		return
	}
	if b.JTI == "" && b.ClientID == "" {
		fail(w, badRequest("Either jti or client_id is required"))
		return
	}
	if len(b.JTI) > 128 || len(b.ClientID) > 128 {
		fail(w, badRequest("jti and client_id are at most 128 bytes"))
		return
	}
	now := a.now()
	until := now.Add(defaultRevocationTTL)
	switch {
	case b.TTLSeconds != nil:
		if *b.TTLSeconds <= 0 {
			fail(w, badRequest("ttl_seconds must be positive"))
			return
		}
		until = now.Add(time.Duration(min(*b.TTLSeconds, int64(maxRevocationTTL/time.Second))) * time.Second)
	case b.ExpiresAt != nil:
		until = time.Unix(*b.ExpiresAt, 0)
		if !until.After(now) {
			fail(w, badRequest("expires_at is in the past"))
			return
		}
		if until.Sub(now) > maxRevocationTTL {
			until = now.Add(maxRevocationTTL)
		}
	}
	n, err := a.hub.Revoke(s.app.ID, channels.Revocation{JTI: b.JTI, ClientID: b.ClientID, Until: until})
	if err != nil {
		fail(w, a.publishError(s.app.ID, err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked_jti": b.JTI != "", "revoked_client_id": b.ClientID != "", "closed_connections": n})
}
