package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// cookieName names the session cookie.
const cookieName = "pushwire_console"

// Failed sign-ins allowed per minute on the node; more are answered 429.
const maxFailuresPerMinute = 30

func randomKey() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic("console: no randomness: " + err.Error()) // crypto/rand never fails on supported platforms
	}
	return k
}

// credential is what signs in to the app's console: its console token, else its secret.
func (c *Console) credential(appID string) (string, bool) {
	a, ok := c.apps[appID]
	if !ok {
		return "", false
	}
	if a.ConsoleToken != "" {
		return a.ConsoleToken, true
	}
	return a.Secret, true
}

// checkCredential compares a sign-in in constant time (for a known app).
func (c *Console) checkCredential(appID, given string) bool {
	want, ok := c.credential(appID)
	if !ok || given == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(given)) == 1
}

// mac is the session signature of app and expiry, bound to the app's current credential.
func (c *Console) mac(appID string, exp int64) string {
	cred, _ := c.credential(appID)
	h := hmac.New(sha256.New, c.key)
	io.WriteString(h, appID)
	h.Write([]byte{0})
	io.WriteString(h, strconv.FormatInt(exp, 10))
	h.Write([]byte{0})
	io.WriteString(h, cred)
	return hex.EncodeToString(h.Sum(nil))
}

// sessionValue encodes a session cookie: base64url of "appID\x00exp\x00mac".
func (c *Console) sessionValue(appID string, exp int64) string {
	raw := appID + "\x00" + strconv.FormatInt(exp, 10) + "\x00" + c.mac(appID, exp)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// sessionApp returns the app of a valid, unexpired session cookie value.
func (c *Console) sessionApp(v string) (string, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return "", false
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 3 {
		return "", false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || c.now().Unix() >= exp {
		return "", false
	}
	if _, ok := c.apps[parts[0]]; !ok {
		return "", false
	}
	if !hmac.Equal([]byte(parts[2]), []byte(c.mac(parts[0], exp))) {
		return "", false
	}
	return parts[0], true
}

// Authenticate returns the app a request holds the console credential of: a session cookie
// from a sign-in, or HTTP Basic authentication with the app id and its console token (or
// secret). httpapi uses it for GET /stats.
func (c *Console) Authenticate(r *http.Request) (string, bool) {
	if id, pw, ok := r.BasicAuth(); ok {
		return id, c.checkCredential(id, pw)
	}
	if ck, err := r.Cookie(cookieName); err == nil {
		return c.sessionApp(ck.Value)
	}
	return "", false
}

type appKey struct{}

// authed runs h for requests with a valid session (or Basic credential); others get 401.
func (c *Console) authed(h func(w http.ResponseWriter, r *http.Request, appID string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := c.Authenticate(r)
		if !ok {
			writeJSON(w, http.StatusUnauthorized, errBody{"Sign in first"})
			return
		}
		if r.Method != http.MethodGet && !sameOriginJSON(w, r) {
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), appKey{}, id)), id)
	}
}

// sameOriginJSON refuses (and answers) a state-changing request that is not JSON or comes
// from another origin: a form on another site can send neither.
func sameOriginJSON(w http.ResponseWriter, r *http.Request) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, errBody{"Send Content-Type: application/json"})
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			writeJSON(w, http.StatusForbidden, errBody{"Cross-origin request refused"})
			return false
		}
	}
	return true
}

// login answers POST api/login {"app_id","credential"}: 200 and a session cookie, 401 for a
// wrong pair (without saying which half), 429 past the node's failure budget.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if !sameOriginJSON(w, r) {
		return
	}
	if !c.limiter.allow(c.now()) {
		writeJSON(w, http.StatusTooManyRequests, errBody{"Too many failed sign-ins: wait a minute"})
		return
	}
	var in struct {
		AppID      string `json:"app_id"`
		Credential string `json:"credential"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 8<<10)).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, errBody{"Expected {\"app_id\":\"…\",\"credential\":\"…\"}"})
		return
	}
	if !c.checkCredential(in.AppID, in.Credential) {
		c.limiter.fail(c.now())
		c.log.Info("console sign-in refused", zap.String("app_id", in.AppID), zap.String("remote", r.RemoteAddr))
		writeJSON(w, http.StatusUnauthorized, errBody{"Unknown app id or wrong credential (the app's console token, or its secret when it has none)"})
		return
	}
	exp := c.now().Add(c.opts.SessionTTL).Unix()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: c.sessionValue(in.AppID, exp), Path: c.opts.Path + "/",
		Expires: time.Unix(exp, 0), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	c.log.Info("console sign-in", zap.String("app_id", in.AppID), zap.String("remote", r.RemoteAddr))
	writeJSON(w, http.StatusOK, map[string]string{"app_id": in.AppID})
}

// logout answers POST api/logout by clearing the cookie.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOriginJSON(w, r) {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: c.opts.Path + "/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// loginLimiter counts failed sign-ins per minute for the node.
type loginLimiter struct {
	mu       sync.Mutex
	window   time.Time
	failures int
}

func (l *loginLimiter) roll(now time.Time) {
	if now.Sub(l.window) >= time.Minute {
		l.window, l.failures = now, 0
	}
}

func (l *loginLimiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll(now)
	return l.failures < maxFailuresPerMinute
}

func (l *loginLimiter) fail(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll(now)
	l.failures++
}
