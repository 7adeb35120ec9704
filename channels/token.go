package channels

import (
	"time"

	"github.com/pushwire/pushwire/protocol"
)

// Capability-token codes carried in the data of sockudo:token_expired.
const (
	CodeTokenExpired = 40142
	CodeTokenRevoked = 40160
)

var errTokenRevoked = &protocol.Error{Code: protocol.CodeUnauthorized, Message: "Authentication error: capability token revoked"}

// allow checks the connection's capability token for op on channel; without a token
// everything is allowed.
func (c *Conn) allow(op protocol.Op, channel string) *protocol.Error {
	c.mu.Lock()
	tok := c.token
	c.mu.Unlock()
	if tok == nil || tok.Capabilities.Allows(op, channel) {
		return nil
	}
	return protocol.Errorf(protocol.CodeUnauthorized, "Authentication error: capability token does not grant %s on %s", op, protocol.Truncate(channel, 200))
}

// Allow reports whether the connection's capability token (if any) grants op on channel,
// as a 4009 error when it does not.
func (c *Conn) Allow(op protocol.Op, channel string) *protocol.Error { return c.allow(op, channel) }

// armTokenExpiry schedules the expiry of tok: at exp the client is told (40142) and, unless
// it refreshes within the grace period, closed with 4009. Callers must not hold c.mu.
func (c *Conn) armTokenExpiry(tok *protocol.TokenClaims) {
	d := tok.ExpiresAt.Sub(c.app.hub.now())
	if d < 0 {
		d = 0
	}
	c.mu.Lock()
	if c.tokenTimer != nil {
		c.tokenTimer.Stop()
	}
	c.tokenTimer = c.app.hub.afterFunc(d, func() { c.tokenExpired(tok) })
	c.mu.Unlock()
}

func (c *Conn) tokenExpired(tok *protocol.TokenClaims) {
	c.mu.Lock()
	if c.gone || c.token != tok {
		c.mu.Unlock()
		return
	}
	c.tokenTimer = c.app.hub.afterFunc(c.app.hub.tokenGrace, func() {
		c.mu.Lock()
		still := !c.gone && c.token == tok
		c.mu.Unlock()
		if still {
			c.sub.Close(&protocol.Error{Code: protocol.CodeUnauthorized, Message: "capability token expired"})
		}
	})
	c.mu.Unlock()
	c.sub.Send(protocol.TokenExpired(c.sub.Version(), CodeTokenExpired, "expired"))
}

// RefreshToken handles sockudo:auth: a verified fresh token replaces the current one and
// re-arms the expiry, then sockudo:auth_success is sent. The new token must name the same
// client id as the connection's token and signed-in user, and must not be revoked.
func (c *Conn) RefreshToken(tok *protocol.TokenClaims) *protocol.Error {
	if !c.v2 {
		return &protocol.Error{Code: protocol.CodeUnauthorized, Message: "Authentication error: sockudo:auth needs a protocol 2 connection"}
	}
	app := c.app
	if app.revoked(tok) {
		return errTokenRevoked
	}
	c.mu.Lock()
	old, user := c.token, c.user
	c.mu.Unlock()
	if old != nil && old.ClientID != tok.ClientID {
		return protocol.Errorf(protocol.CodeUnauthorized, "Authentication error: the refreshed token is for client %q, the connection is %q", protocol.Truncate(tok.ClientID, 128), protocol.Truncate(old.ClientID, 128))
	}
	if user != "" && user != tok.ClientID {
		return protocol.Errorf(protocol.CodeUnauthorized, "Authentication error: the token is for client %q, the connection signed in as %q", protocol.Truncate(tok.ClientID, 128), protocol.Truncate(user, 128))
	}
	if old != nil {
		app.untrackToken(c, old)
	}
	c.mu.Lock()
	c.token = tok
	c.mu.Unlock()
	app.trackToken(c, tok)
	c.markAuthorized()
	c.armTokenExpiry(tok)
	c.sub.Send(protocol.AuthSuccess(c.sub.Version(), tok.ClientID, tok.JTI, tok.ExpiresAt.Unix()))
	return nil
}

func tokenKeys(tok *protocol.TokenClaims) [2]string {
	return [2]string{"jti:" + tok.JTI, "client:" + tok.ClientID}
}

// trackToken indexes c under its token's jti and client id, and the client id as a user of
// the app (terminate_connections reaches it).
func (a *appState) trackToken(c *Conn, tok *protocol.TokenClaims) {
	a.tokensMu.Lock()
	for _, k := range tokenKeys(tok) {
		m := a.tokens[k]
		if m == nil {
			m = map[*Conn]struct{}{}
			a.tokens[k] = m
		}
		m[c] = struct{}{}
	}
	a.tokensMu.Unlock()
	a.addUserConn(tok.ClientID, c)
}

func (a *appState) untrackToken(c *Conn, tok *protocol.TokenClaims) {
	a.tokensMu.Lock()
	for _, k := range tokenKeys(tok) {
		delete(a.tokens[k], c)
		if len(a.tokens[k]) == 0 {
			delete(a.tokens, k)
		}
	}
	a.tokensMu.Unlock()
	a.removeUserConn(tok.ClientID, c)
}

// revoked reports whether tok's jti or client id is revoked now.
func (a *appState) revoked(tok *protocol.TokenClaims) bool {
	now := a.hub.now()
	a.tokensMu.Lock()
	defer a.tokensMu.Unlock()
	for _, k := range tokenKeys(tok) {
		if until, ok := a.revocations[k]; ok {
			if now.Before(until) {
				return true
			}
			delete(a.revocations, k)
		}
	}
	return false
}

// Revocation revokes capability tokens by jti and/or client id until a time.
type Revocation struct {
	JTI      string
	ClientID string
	Until    time.Time
}

// Revoke records a revocation (later connects and refreshes with a matching token are
// refused) and closes the app's matching connections now: each gets sockudo:token_expired
// {code:40160,reason:"revoked"} and close 4009. It reports how many it closed.
func (h *Hub) Revoke(appID string, r Revocation) (int, error) {
	app, ok := h.byID[appID]
	if !ok {
		return 0, ErrUnknownApp
	}
	now := h.now()
	var keys []string
	if r.JTI != "" {
		keys = append(keys, "jti:"+r.JTI)
	}
	if r.ClientID != "" {
		keys = append(keys, "client:"+r.ClientID)
	}
	conns := map[*Conn]struct{}{}
	app.tokensMu.Lock()
	for k, until := range app.revocations {
		if !now.Before(until) {
			delete(app.revocations, k)
		}
	}
	for _, k := range keys {
		app.revocations[k] = r.Until
		for c := range app.tokens[k] {
			conns[c] = struct{}{}
		}
	}
	app.tokensMu.Unlock()
	for c := range conns {
		c.sub.Send(protocol.TokenExpired(c.sub.Version(), CodeTokenRevoked, "revoked"))
		c.sub.Close(&protocol.Error{Code: protocol.CodeUnauthorized, Message: "capability token revoked"})
	}
	return len(conns), nil
}
