package pushtest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The fakes below stand in for the push providers on the internet. Each speaks the
// provider's real protocol and checks what a real provider checks (authentication tokens,
// headers, body shape and size), records what it accepted, and can be scripted to fail.
// Their TLS certificates come from httptest; CAFile writes them for a pushwire config.

// Script decides a fake's answer to its n-th request (1-based) for token: status 0 means
// "answer as the provider does when all is well"; Down means "drop the connection".
type Script func(n int, token string) (status int, reason string)

// Down, returned by a Script as the status, drops the connection without an answer.
const Down = -1

// fake is what the three fakes share.
type fake struct {
	t      testing.TB
	srv    *httptest.Server
	mu     sync.Mutex
	script Script
	n      atomic.Int64
	errs   []string
	// CountOnly keeps no copy of accepted messages, only Accepted (benchmarks).
	CountOnly bool
	accepted  atomic.Int64
}

// Accepted is the number of messages the fake accepted.
func (f *fake) Accepted() int { return int(f.accepted.Load()) }

// SetScript replaces the fake's script (nil: always succeed).
func (f *fake) SetScript(s Script) {
	f.mu.Lock()
	f.script = s
	f.mu.Unlock()
}

func (f *fake) decide(w http.ResponseWriter, token string) (int, string, bool) {
	n := int(f.n.Add(1))
	f.mu.Lock()
	s := f.script
	f.mu.Unlock()
	if s == nil {
		return 0, "", true
	}
	status, reason := s(n, token)
	if status == Down {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return 0, "", false
			}
		}
		panic(http.ErrAbortHandler) // HTTP/2: reset the stream
	}
	return status, reason, true
}

// Requests is the number of requests the fake received.
func (f *fake) Requests() int { return int(f.n.Load()) }

// URL is the fake's base URL.
func (f *fake) URL() string { return f.srv.URL }

// Close stops the fake.
func (f *fake) Close() { f.srv.Close() }

// Errors lists the protocol violations the fake saw (requests it refused with 400/403).
func (f *fake) Errors() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.errs...)
}

func (f *fake) refuse(w http.ResponseWriter, status int, body string) {
	f.mu.Lock()
	f.errs = append(f.errs, body)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// CAFile writes the fake's certificate as a PEM file in dir and returns its path.
func (f *fake) CAFile(dir string) string {
	p := filepath.Join(dir, fmt.Sprintf("ca-%p.pem", f))
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	if err := os.WriteFile(p, b, 0o600); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// Roots is a pool holding the fake's certificate.
func (f *fake) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(f.srv.Certificate())
	return p
}

func startTLS(t testing.TB, h http.Handler, http2 bool, addr string) *httptest.Server {
	s := httptest.NewUnstartedServer(h)
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		s.Listener.Close()
		s.Listener = ln
	}
	s.EnableHTTP2 = http2
	s.StartTLS()
	return s
}

// APNsNote is a notification the fake APNs accepted.
type APNsNote struct {
	Token   string
	Header  http.Header
	Body    []byte
	Payload map[string]any
}

// FakeAPNs is APNs: HTTP/2 over TLS; POST /3/device/{token} with an ES256 provider token
// (kid = key id, iss = team id, iat within the hour), apns-topic, apns-push-type,
// apns-priority and a JSON body of at most 4096 bytes holding "aps".
type FakeAPNs struct {
	fake
	TeamID, KeyID, Topic string
	// KeyPEM is the .p8 signing key the client must use.
	KeyPEM []byte
	pub    *ecdsa.PublicKey
	notes  []APNsNote
	// Now is the clock the provider token's iat is checked against. Default time.Now.
	Now func() time.Time
}

// NewFakeAPNs starts a fake APNs with a fresh signing key.
func NewFakeAPNs(t testing.TB) *FakeAPNs {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	f := &FakeAPNs{TeamID: "TEAM123456", KeyID: "KEY1234567", Topic: "com.example.app",
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), pub: &key.PublicKey, Now: time.Now}
	f.t = t
	f.srv = startTLS(t, http.HandlerFunc(f.serve), true, "")
	t.Cleanup(f.Close)
	return f
}

func (f *FakeAPNs) serve(w http.ResponseWriter, r *http.Request) {
	apnsErr := func(status int, reason string) {
		w.Header().Set("apns-id", r.Header.Get("apns-id"))
		f.refuse(w, status, `{"reason":"`+reason+`"}`)
	}
	if r.ProtoMajor != 2 {
		apnsErr(http.StatusBadRequest, "HTTP2Required")
		return
	}
	token, ok := strings.CutPrefix(r.URL.Path, "/3/device/")
	if r.Method != http.MethodPost || !ok {
		apnsErr(http.StatusNotFound, "BadPath")
		return
	}
	if _, err := hex.DecodeString(token); err != nil || len(token) != 64 {
		apnsErr(http.StatusBadRequest, "BadDeviceToken")
		return
	}
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "bearer ")
	if !ok {
		apnsErr(http.StatusForbidden, "MissingProviderToken")
		return
	}
	tok, err := jwt.Parse(bearer, func(t *jwt.Token) (any, error) {
		if t.Header["kid"] != f.KeyID {
			return nil, errors.New("wrong kid")
		}
		return f.pub, nil
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(f.TeamID), jwt.WithIssuedAt(), jwt.WithTimeFunc(f.Now))
	if err != nil {
		apnsErr(http.StatusForbidden, "InvalidProviderToken")
		return
	}
	if iat, _ := tok.Claims.GetIssuedAt(); iat == nil || f.Now().Sub(iat.Time) > time.Hour {
		apnsErr(http.StatusForbidden, "ExpiredProviderToken")
		return
	}
	if r.Header.Get("apns-topic") != f.Topic {
		apnsErr(http.StatusBadRequest, "DeviceTokenNotForTopic")
		return
	}
	switch pt, pr := r.Header.Get("apns-push-type"), r.Header.Get("apns-priority"); {
	case pt != "alert" && pt != "background":
		apnsErr(http.StatusBadRequest, "InvalidPushType")
		return
	case pr != "10" && pr != "5" && pr != "1":
		apnsErr(http.StatusBadRequest, "BadPriority")
		return
	case pt == "background" && pr != "5":
		apnsErr(http.StatusBadRequest, "BadPriority")
		return
	}
	if e := r.Header.Get("apns-expiration"); e != "" {
		if _, err := strconv.ParseInt(e, 10, 64); err != nil {
			apnsErr(http.StatusBadRequest, "BadExpirationDate")
			return
		}
	}
	body, _ := io.ReadAll(r.Body)
	if len(body) > 4096 {
		apnsErr(http.StatusRequestEntityTooLarge, "PayloadTooLarge")
		return
	}
	var payload map[string]any
	if json.Unmarshal(body, &payload) != nil || payload["aps"] == nil {
		apnsErr(http.StatusBadRequest, "PayloadEmpty")
		return
	}
	status, reason, ok := f.decide(w, token)
	if !ok {
		return
	}
	if status != 0 && status != http.StatusOK {
		w.Header().Set("apns-id", newUUID())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if status == http.StatusGone {
			_, _ = fmt.Fprintf(w, `{"reason":%q,"timestamp":%d}`, orDefault(reason, "Unregistered"), f.Now().UnixMilli())
		} else {
			_, _ = fmt.Fprintf(w, `{"reason":%q}`, orDefault(reason, "ServiceUnavailable"))
		}
		return
	}
	f.accepted.Add(1)
	if !f.CountOnly {
		f.mu.Lock()
		f.notes = append(f.notes, APNsNote{Token: token, Header: r.Header.Clone(), Body: body, Payload: payload})
		f.mu.Unlock()
	}
	w.Header().Set("apns-id", newUUID())
	w.WriteHeader(http.StatusOK)
}

// Notes returns the notifications accepted so far.
func (f *FakeAPNs) Notes() []APNsNote {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]APNsNote(nil), f.notes...)
}

// FCMMessage is a message the fake FCM accepted.
type FCMMessage struct {
	Token   string
	Message map[string]json.RawMessage
	Raw     []byte
}

// FakeFCM is FCM HTTP v1 and Google's OAuth2 token endpoint: POST /token takes a
// JWT-bearer grant (RS256 assertion by the service account: iss = client_email, the
// firebase.messaging scope, aud = token_uri, exp - iat <= 1 h) and issues an access token;
// POST /v1/projects/{project}/messages:send takes {"message":{...}} with exactly one target
// and string-valued data, authorized with an issued token.
type FakeFCM struct {
	fake
	Project, ClientEmail string
	key                  *rsa.PrivateKey
	tokens               map[string]bool
	msgs                 []FCMMessage
	grants               int
}

// NewFakeFCM starts a fake FCM with a fresh service account.
func NewFakeFCM(t testing.TB) *FakeFCM {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	f := &FakeFCM{Project: "pushwire-test", ClientEmail: "pushwire@pushwire-test.iam.gserviceaccount.com", key: key, tokens: map[string]bool{}}
	f.t = t
	f.srv = startTLS(t, http.HandlerFunc(f.serve), true, "")
	t.Cleanup(f.Close)
	return f
}

// ServiceAccountJSON is the service account key file whose token_uri is the fake.
func (f *FakeFCM) ServiceAccountJSON() []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(f.key)
	b, _ := json.Marshal(map[string]string{"type": "service_account", "project_id": f.Project, "private_key_id": "k1",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "client_email": f.ClientEmail,
		"client_id": "1", "token_uri": f.srv.URL + "/token", "auth_uri": "https://accounts.google.com/o/oauth2/auth"})
	return b
}

// Grants is the number of access tokens issued.
func (f *FakeFCM) Grants() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.grants
}

func (f *FakeFCM) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		f.serveToken(w, r)
		return
	}
	gErr := func(status int, st, msg, code string) {
		details := ""
		if code != "" {
			details = `,"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"` + code + `"}]`
		}
		f.refuse(w, status, fmt.Sprintf(`{"error":{"code":%d,"message":%q,"status":%q%s}}`, status, msg, st, details))
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/projects/"+f.Project+"/messages:send" {
		gErr(http.StatusNotFound, "NOT_FOUND", "Requested entity was not found.", "")
		return
	}
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	valid := f.tokens[tok]
	f.mu.Unlock()
	if !valid {
		gErr(http.StatusUnauthorized, "UNAUTHENTICATED", "Request had invalid authentication credentials.", "")
		return
	}
	raw, _ := io.ReadAll(r.Body)
	var body struct {
		Message map[string]json.RawMessage `json:"message"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || body.Message == nil {
		gErr(http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid JSON payload received.", "INVALID_ARGUMENT")
		return
	}
	targets := 0
	for _, k := range []string{"token", "topic", "condition"} {
		if _, ok := body.Message[k]; ok {
			targets++
		}
	}
	var token string
	_ = json.Unmarshal(body.Message["token"], &token)
	if targets != 1 || token == "" {
		gErr(http.StatusBadRequest, "INVALID_ARGUMENT", "Exactly one of token, topic or condition must be set.", "INVALID_ARGUMENT")
		return
	}
	if d, ok := body.Message["data"]; ok {
		var m map[string]string
		if json.Unmarshal(d, &m) != nil {
			gErr(http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid value at 'message.data': values must be strings", "INVALID_ARGUMENT")
			return
		}
	}
	size := len(body.Message["notification"]) + len(body.Message["data"])
	if size > 4096 {
		gErr(http.StatusBadRequest, "INVALID_ARGUMENT", "Message is too big", "INVALID_ARGUMENT")
		return
	}
	status, reason, ok := f.decide(w, token)
	if !ok {
		return
	}
	switch {
	case status == http.StatusNotFound:
		gErr(status, "NOT_FOUND", "Requested entity was not found.", orDefault(reason, "UNREGISTERED"))
		return
	case status >= 500:
		w.Header().Set("Retry-After", "0")
		gErr(status, "UNAVAILABLE", "The service is currently unavailable.", orDefault(reason, "UNAVAILABLE"))
		return
	case status != 0 && status != http.StatusOK:
		gErr(status, "INVALID_ARGUMENT", "refused", reason)
		return
	}
	n := f.accepted.Add(1)
	if !f.CountOnly {
		f.mu.Lock()
		f.msgs = append(f.msgs, FCMMessage{Token: token, Message: body.Message, Raw: raw})
		f.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_, _ = fmt.Fprintf(w, `{"name":"projects/%s/messages/%d"}`, f.Project, n)
}

func (f *FakeFCM) serveToken(w http.ResponseWriter, r *http.Request) {
	oauthErr := func(code, desc string) {
		f.refuse(w, http.StatusBadRequest, fmt.Sprintf(`{"error":%q,"error_description":%q}`, code, desc))
	}
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		oauthErr("invalid_request", "POST a form")
		return
	}
	if r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		oauthErr("unsupported_grant_type", "Invalid grant_type: "+r.PostForm.Get("grant_type"))
		return
	}
	tok, err := jwt.Parse(r.PostForm.Get("assertion"), func(*jwt.Token) (any, error) { return &f.key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(f.ClientEmail), jwt.WithAudience(f.srv.URL+"/token"),
		jwt.WithIssuedAt(), jwt.WithExpirationRequired())
	if err != nil {
		oauthErr("invalid_grant", "Invalid JWT: "+err.Error())
		return
	}
	claims := tok.Claims.(jwt.MapClaims)
	iat, _ := claims.GetIssuedAt()
	exp, _ := claims.GetExpirationTime()
	if scope, _ := claims["scope"].(string); !strings.Contains(scope, "https://www.googleapis.com/auth/firebase.messaging") {
		oauthErr("invalid_scope", "firebase.messaging scope missing")
		return
	}
	if exp.Sub(iat.Time) > time.Hour {
		oauthErr("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes)")
		return
	}
	access := "ya29.fake-" + newUUID()
	f.mu.Lock()
	f.tokens[access] = true
	f.grants++
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = fmt.Fprintf(w, `{"access_token":%q,"expires_in":3599,"token_type":"Bearer"}`, access)
}

// Messages returns the messages accepted so far.
func (f *FakeFCM) Messages() []FCMMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FCMMessage(nil), f.msgs...)
}

// WebSub is a browser's push subscription on the fake push service: its endpoint and keys,
// and the private key the browser would decrypt with.
type WebSub struct {
	Endpoint, P256dh, Auth string
	priv                   *ecdh.PrivateKey
	secret                 []byte
}

// WebMessage is a message the fake push service accepted, decrypted.
type WebMessage struct {
	Endpoint  string
	Header    http.Header
	Plaintext []byte
	// VAPID are the verified claims of the VAPID JWT.
	VAPID jwt.MapClaims
}

// FakeWebPush is a Web Push service (RFC 8030): POST to a subscription endpoint with
// Content-Encoding aes128gcm, a TTL, and Authorization "vapid t=<ES256 JWT>, k=<key>" whose
// aud is the endpoint origin and exp within 24 h (RFC 8292). It decrypts every body with the
// subscription's private key (RFC 8291, implemented here with crypto/ecdh and crypto/hkdf).
type FakeWebPush struct {
	fake
	subs map[string]*WebSub
	msgs []WebMessage
	// VAPIDKey is the application server key the fake expects (base64url), when set.
	VAPIDKey string
}

// NewFakeWebPush starts a fake push service.
func NewFakeWebPush(t testing.TB) *FakeWebPush {
	f := &FakeWebPush{subs: map[string]*WebSub{}}
	f.t = t
	f.srv = startTLS(t, http.HandlerFunc(f.serve), false, "")
	t.Cleanup(f.Close)
	return f
}

// Subscribe creates a subscription as a browser would.
func (f *FakeWebPush) Subscribe() *WebSub {
	priv, _ := ecdh.P256().GenerateKey(rand.Reader)
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	s := &WebSub{Endpoint: f.srv.URL + "/push/" + newUUID(), P256dh: base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes()),
		Auth: base64.RawURLEncoding.EncodeToString(secret), priv: priv, secret: secret}
	f.mu.Lock()
	f.subs[s.Endpoint] = s
	f.mu.Unlock()
	return s
}

// VAPIDKeys returns a fresh VAPID key pair, base64url (public: uncompressed point).
func VAPIDKeys() (public, private string) {
	k, _ := ecdh.P256().GenerateKey(rand.Reader)
	return base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()), base64.RawURLEncoding.EncodeToString(k.Bytes())
}

func (f *FakeWebPush) serve(w http.ResponseWriter, r *http.Request) {
	endpoint := f.srv.URL + r.URL.Path
	f.mu.Lock()
	sub := f.subs[endpoint]
	f.mu.Unlock()
	if r.Method != http.MethodPost {
		f.refuse(w, http.StatusMethodNotAllowed, "POST only")
		return
	}
	if sub == nil {
		f.refuse(w, http.StatusNotFound, "no such subscription")
		return
	}
	if r.Header.Get("Content-Encoding") != "aes128gcm" {
		f.refuse(w, http.StatusUnsupportedMediaType, "Content-Encoding must be aes128gcm")
		return
	}
	if ttl, err := strconv.Atoi(r.Header.Get("TTL")); err != nil || ttl < 0 {
		f.refuse(w, http.StatusBadRequest, "TTL header required")
		return
	}
	claims, err := f.checkVAPID(r.Header.Get("Authorization"), endpoint)
	if err != nil {
		f.refuse(w, http.StatusForbidden, "VAPID: "+err.Error())
		return
	}
	body, _ := io.ReadAll(r.Body)
	if len(body) > 4096 {
		f.refuse(w, http.StatusRequestEntityTooLarge, "payload over 4096 bytes")
		return
	}
	plain, err := DecryptAES128GCM(body, sub.priv, sub.secret)
	if err != nil {
		f.refuse(w, http.StatusBadRequest, "decrypt: "+err.Error())
		return
	}
	status, _, ok := f.decide(w, endpoint)
	if !ok {
		return
	}
	if status != 0 && status != http.StatusCreated {
		if status == http.StatusGone {
			f.mu.Lock()
			delete(f.subs, endpoint)
			f.mu.Unlock()
		}
		w.WriteHeader(status)
		return
	}
	f.accepted.Add(1)
	if !f.CountOnly {
		f.mu.Lock()
		f.msgs = append(f.msgs, WebMessage{Endpoint: endpoint, Header: r.Header.Clone(), Plaintext: plain, VAPID: claims})
		f.mu.Unlock()
	}
	w.Header().Set("Location", f.srv.URL+"/message/"+newUUID())
	w.WriteHeader(http.StatusCreated)
}

func (f *FakeWebPush) checkVAPID(h, endpoint string) (jwt.MapClaims, error) {
	rest, ok := strings.CutPrefix(h, "vapid ")
	if !ok {
		return nil, errors.New("Authorization must be vapid t=..., k=...")
	}
	var t, k string
	for _, part := range strings.Split(rest, ",") {
		part = strings.TrimSpace(part)
		if v, ok := strings.CutPrefix(part, "t="); ok {
			t = v
		} else if v, ok := strings.CutPrefix(part, "k="); ok {
			k = v
		}
	}
	kb, err := base64.RawURLEncoding.DecodeString(k)
	if err != nil {
		return nil, errors.New("k is not base64url")
	}
	if f.VAPIDKey != "" && k != f.VAPIDKey {
		return nil, errors.New("unexpected application server key")
	}
	pub, err := ecdh.P256().NewPublicKey(kb)
	if err != nil {
		return nil, errors.New("k is not a P-256 point")
	}
	x, y := elliptic.Unmarshal(elliptic.P256(), pub.Bytes()) //nolint:staticcheck // building an ecdsa key from a verified point
	u, _ := url.Parse(endpoint)
	tok, err := jwt.Parse(t, func(*jwt.Token) (any, error) { return &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience(u.Scheme+"://"+u.Host), jwt.WithExpirationRequired())
	if err != nil {
		return nil, err
	}
	claims := tok.Claims.(jwt.MapClaims)
	exp, _ := claims.GetExpirationTime()
	if time.Until(exp.Time) > 24*time.Hour {
		return nil, errors.New("exp more than 24 h ahead")
	}
	if sub, _ := claims["sub"].(string); !strings.HasPrefix(sub, "mailto:") && !strings.HasPrefix(sub, "https:") {
		return nil, errors.New("sub must be a mailto: or https: URI, got " + sub)
	}
	return claims, nil
}

// Messages returns the messages accepted so far.
func (f *FakeWebPush) Messages() []WebMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]WebMessage(nil), f.msgs...)
}

// DecryptAES128GCM decrypts a one-record aes128gcm Web Push body (RFC 8291 §3.4, RFC 8188)
// as the user agent holding priv and authSecret does.
func DecryptAES128GCM(body []byte, priv *ecdh.PrivateKey, authSecret []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("body shorter than the aes128gcm header")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if idlen != 65 || len(body) < 21+idlen+17 {
		return nil, errors.New("keyid must be the 65-byte application server public key")
	}
	asPub, err := ecdh.P256().NewPublicKey(body[21 : 21+idlen])
	if err != nil {
		return nil, err
	}
	ct := body[21+idlen:]
	if uint32(len(ct)) > rs {
		return nil, errors.New("more than one record")
	}
	shared, err := priv.ECDH(asPub)
	if err != nil {
		return nil, err
	}
	keyInfo := "WebPush: info\x00" + string(priv.PublicKey().Bytes()) + string(asPub.Bytes())
	prkKey, _ := hkdf.Extract(sha256.New, shared, authSecret)
	ikm, _ := hkdf.Expand(sha256.New, prkKey, keyInfo, 32)
	prk, _ := hkdf.Extract(sha256.New, ikm, salt)
	cek, _ := hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16)
	nonce, _ := hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12)
	block, _ := aes.NewCipher(cek)
	gcm, _ := cipher.NewGCM(block)
	plain, err := gcm.Open(nil, nonce, ct, nil)
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexFunc(plain, func(r rune) bool { return r != 0 })
	if i < 0 || plain[i] != 2 {
		return nil, errors.New("last record must end with delimiter 0x02 before its padding")
	}
	return plain[:i], nil
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
