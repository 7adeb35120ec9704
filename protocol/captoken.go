package protocol

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Op is a capability-token operation.
type Op string

// The core capability operations. A connection without a capability token may do all of
// them; a token grants only what it lists.
const (
	OpSubscribe Op = "subscribe"
	OpPublish   Op = "publish"
	OpHistory   Op = "history"
	OpPresence  Op = "presence"
)

// The extended capability operations (Sockudo's names, hyphen spelling). Each needs an
// explicit grant: a connection without a token has none of them (Op.Explicit).
const (
	// OpAnnotationSubscribe receives raw annotation events of a channel.
	OpAnnotationSubscribe Op = "annotation-subscribe"
	// OpAnnotationPublish publishes annotations on a channel's messages.
	OpAnnotationPublish Op = "annotation-publish"
	// OpAnnotationDeleteOwn deletes annotations the connection's client published.
	OpAnnotationDeleteOwn Op = "annotation-delete-own"
	// OpAnnotationDeleteAny deletes anyone's annotations.
	OpAnnotationDeleteAny Op = "annotation-delete-any"
	// OpMessageUpdateOwn updates mutable messages the connection's client created.
	OpMessageUpdateOwn Op = "message-update-own"
	// OpMessageUpdateAny updates anyone's mutable messages.
	OpMessageUpdateAny Op = "message-update-any"
	// OpMessageDeleteOwn deletes mutable messages the connection's client created.
	OpMessageDeleteOwn Op = "message-delete-own"
	// OpMessageDeleteAny deletes anyone's mutable messages.
	OpMessageDeleteAny Op = "message-delete-any"
	// OpMessageAppendOwn appends to mutable messages the connection's client created.
	OpMessageAppendOwn Op = "message-append-own"
	// OpMessageAppendAny appends to anyone's mutable messages.
	OpMessageAppendAny Op = "message-append-any"
	// OpPushSubscribe registers the connection's device for a channel's push notifications.
	OpPushSubscribe Op = "push-subscribe"
	// OpPushAdmin administers push registrations of a channel.
	OpPushAdmin Op = "push-admin"
)

// knownOps lists every operation a token may grant, true for the core ones. Anything else
// makes the token invalid, as in Sockudo ("unsupported capability operation").
var knownOps = map[Op]bool{
	OpSubscribe: true, OpPublish: true, OpHistory: true, OpPresence: true,
	OpAnnotationSubscribe: false, OpAnnotationPublish: false, OpAnnotationDeleteOwn: false, OpAnnotationDeleteAny: false,
	OpMessageUpdateOwn: false, OpMessageUpdateAny: false, OpMessageDeleteOwn: false, OpMessageDeleteAny: false,
	OpMessageAppendOwn: false, OpMessageAppendAny: false, OpPushSubscribe: false, OpPushAdmin: false,
}

// ParseOp reads one operation name of a token's capability list: Sockudo's hyphen spelling
// or the same name with underscores (message_update_own). ok is false for an unknown name.
func ParseOp(name string) (op Op, ok bool) {
	op = Op(strings.ReplaceAll(name, "_", "-"))
	_, ok = knownOps[op]
	return op, ok
}

// Explicit reports whether op needs an explicit grant even without a capability token: the
// annotation, message mutation and push operations do; the core four do not.
func (op Op) Explicit() bool { return !knownOps[op] }

// MutationOps returns the operations that allow action (update, delete or append) on a
// mutable message: own (the message's creator only) and any. ok is false for other actions.
func MutationOps(action Action) (own, any Op, ok bool) {
	switch action {
	case ActionUpdate:
		return OpMessageUpdateOwn, OpMessageUpdateAny, true
	case ActionDelete:
		return OpMessageDeleteOwn, OpMessageDeleteAny, true
	case ActionAppend:
		return OpMessageAppendOwn, OpMessageAppendAny, true
	}
	return "", "", false
}

// Token limits (ws-protocol §3.3).
const (
	MaxTokenBytes    = 8 << 10
	MaxTokenLifetime = 24 * time.Hour
	TokenLeeway      = 30 * time.Second
	MaxTokenPatterns = 100
	maxTokenIDBytes  = 128
)

// Capabilities maps channel patterns to granted operations. A nil *Capabilities (no token)
// allows every core operation and none of the explicit ones.
type Capabilities struct {
	grants []capGrant
}

type capGrant struct {
	prefix, suffix string
	wildcard       bool
	ops            map[Op]bool
}

// Allows reports whether some pattern matching channel grants op. Without a token (c nil)
// the core operations are allowed and the explicit ones (Op.Explicit) are not.
func (c *Capabilities) Allows(op Op, channel string) bool {
	if c == nil {
		return !op.Explicit()
	}
	for _, g := range c.grants {
		if !g.ops[op] {
			continue
		}
		if g.wildcard {
			if len(channel) >= len(g.prefix)+len(g.suffix) && strings.HasPrefix(channel, g.prefix) && strings.HasSuffix(channel, g.suffix) {
				return true
			}
		} else if channel == g.prefix {
			return true
		}
	}
	return false
}

// TokenClaims are the verified claims of a capability token.
type TokenClaims struct {
	ClientID     string
	JTI          string
	IssuedAt     time.Time
	ExpiresAt    time.Time
	NotBefore    time.Time
	Capabilities *Capabilities
}

func tokenError(format string, args ...any) *Error {
	return &Error{Code: CodeUnauthorized, Message: "Authentication error: " + fmt.Sprintf(format, args...)}
}

var b64 = base64.RawURLEncoding

// ParseCapabilityToken verifies a capability token (an HS256 JWT signed with the app secret
// and carrying kid = the app key) at time now, and returns its claims. Every failure is a
// 4009 error whose message says precisely what is wrong.
func ParseCapabilityToken(token, appKey, appSecret string, now time.Time) (*TokenClaims, *Error) {
	if appSecret == "" {
		return nil, tokenError("the app has no secret to verify tokens with")
	}
	if len(token) > MaxTokenBytes {
		return nil, tokenError("token is larger than %d bytes", MaxTokenBytes)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, tokenError("token is malformed: a JWT has three dot-separated parts, got %d", len(parts))
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil {
		return nil, tokenError("token is malformed: header is not base64url")
	}
	var hdr struct {
		Alg *string `json:"alg"`
		Kid *string `json:"kid"`
	}
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return nil, tokenError("token is malformed: header is not a JSON object")
	}
	if hdr.Alg == nil {
		return nil, tokenError("token header has no alg")
	}
	if *hdr.Alg != "HS256" {
		return nil, tokenError("token algorithm %q is not allowed (HS256 only)", Truncate(*hdr.Alg, 16))
	}
	if hdr.Kid == nil || *hdr.Kid != appKey {
		return nil, tokenError("token kid does not match the app key")
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, tokenError("token is malformed: signature is not base64url")
	}
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write([]byte(parts[0]))
	mac.Write([]byte{'.'})
	mac.Write([]byte(parts[1]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return nil, tokenError("token signature is invalid")
	}
	pb, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, tokenError("token is malformed: payload is not base64url")
	}
	var claims struct {
		Capability json.RawMessage `json:"x-sockudo-capability"`
		ClientID   *string         `json:"x-sockudo-client-id"`
		Exp        *json.Number    `json:"exp"`
		Iat        *json.Number    `json:"iat"`
		Nbf        *json.Number    `json:"nbf"`
		JTI        *string         `json:"jti"`
	}
	dec := json.NewDecoder(bytes.NewReader(pb))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return nil, tokenError("token is malformed: claims are not a JSON object with the expected types")
	}
	if dec.More() || bytes.TrimSpace(pb[dec.InputOffset():]) != nil && len(bytes.TrimSpace(pb[dec.InputOffset():])) > 0 {
		return nil, tokenError("token is malformed: trailing data after the claims")
	}
	var dates map[string]json.RawMessage
	_ = json.Unmarshal(pb, &dates)
	for _, k := range []string{"exp", "iat", "nbf"} {
		if v := bytes.TrimSpace(dates[k]); len(v) > 0 && v[0] == '"' {
			return nil, tokenError("token %s claim must be a number, not a string", k)
		}
	}
	exp, ok := numericDate(claims.Exp)
	if !ok {
		return nil, tokenError("token has no valid exp claim")
	}
	if now.After(exp.Add(TokenLeeway)) {
		return nil, tokenError("token has expired")
	}
	var nbf time.Time
	if claims.Nbf != nil {
		if nbf, ok = numericDate(claims.Nbf); !ok {
			return nil, tokenError("token nbf claim is not a number")
		}
		if nbf.After(now.Add(TokenLeeway)) {
			return nil, tokenError("token is not valid yet")
		}
	}
	iat, ok := numericDate(claims.Iat)
	if !ok {
		return nil, tokenError("token has no valid iat claim")
	}
	if iat.After(now.Add(TokenLeeway)) {
		return nil, tokenError("token iat is in the future")
	}
	if exp.Sub(iat) > MaxTokenLifetime {
		return nil, tokenError("token lifetime exceeds 24h")
	}
	if claims.ClientID == nil || len(*claims.ClientID) == 0 || len(*claims.ClientID) > maxTokenIDBytes {
		return nil, tokenError("token x-sockudo-client-id must be 1..%d bytes", maxTokenIDBytes)
	}
	if claims.JTI == nil || len(*claims.JTI) == 0 || len(*claims.JTI) > maxTokenIDBytes {
		return nil, tokenError("token jti must be 1..%d bytes", maxTokenIDBytes)
	}
	caps, perr := parseCapabilities(claims.Capability)
	if perr != nil {
		return nil, perr
	}
	return &TokenClaims{ClientID: *claims.ClientID, JTI: *claims.JTI, IssuedAt: iat, ExpiresAt: exp, NotBefore: nbf, Capabilities: caps}, nil
}

// numericDate reads a JWT NumericDate (seconds, possibly fractional).
func numericDate(n *json.Number) (time.Time, bool) {
	if n == nil {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > 1e11 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// parseCapabilities reads x-sockudo-capability: an object, or a string holding one, mapping
// patterns to operation lists.
func parseCapabilities(raw json.RawMessage) (*Capabilities, *Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, tokenError("token has no x-sockudo-capability claim")
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, tokenError("token x-sockudo-capability is not valid JSON")
		}
		raw = bytes.TrimSpace([]byte(s))
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, tokenError("token x-sockudo-capability must be an object of pattern: [operations]")
	}
	var m map[string][]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, tokenError("token x-sockudo-capability must be an object of pattern: [operations]")
	}
	if len(m) > MaxTokenPatterns {
		return nil, tokenError("token grants %d patterns, the limit is %d", len(m), MaxTokenPatterns)
	}
	patterns := make([]string, 0, len(m))
	for p := range m {
		patterns = append(patterns, p)
	}
	sort.Strings(patterns)
	c := &Capabilities{}
	for _, p := range patterns {
		if p == "" {
			return nil, tokenError("token capability pattern is empty")
		}
		g := capGrant{prefix: p, ops: map[Op]bool{}}
		switch n := strings.Count(p, "*"); n {
		case 0:
		case 1:
			i := strings.IndexByte(p, '*')
			g.prefix, g.suffix, g.wildcard = p[:i], p[i+1:], true
		default:
			return nil, tokenError("token capability pattern %q has %d wildcards, at most one is allowed", Truncate(p, 64), n)
		}
		for _, name := range m[p] {
			op, ok := ParseOp(name)
			if !ok {
				return nil, tokenError("unknown capability operation %q for pattern %q", Truncate(name, 32), Truncate(p, 64))
			}
			g.ops[op] = true
		}
		c.grants = append(c.grants, g)
	}
	return c, nil
}

// TokenRequest describes a capability token to mint.
type TokenRequest struct {
	ClientID   string
	JTI        string
	Capability map[string][]string
	IssuedAt   time.Time
	// NotBefore defaults to IssuedAt.
	NotBefore time.Time
	TTL       time.Duration
}

// SignCapabilityToken mints an HS256 capability token for the app (kid = appKey). It does
// not check the limits ParseCapabilityToken enforces, so tests can mint bad tokens.
func SignCapabilityToken(appKey, appSecret string, r TokenRequest) (string, error) {
	if r.IssuedAt.IsZero() {
		return "", errors.New("protocol: token IssuedAt is required")
	}
	nbf := r.NotBefore
	if nbf.IsZero() {
		nbf = r.IssuedAt
	}
	capJSON, err := json.Marshal(r.Capability)
	if err != nil {
		return "", fmt.Errorf("protocol: token capability: %w", err)
	}
	hdr, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT", "kid": appKey})
	payload, err := json.Marshal(map[string]any{
		"x-sockudo-capability": string(capJSON),
		"x-sockudo-client-id":  r.ClientID,
		"jti":                  r.JTI,
		"iat":                  r.IssuedAt.Unix(),
		"nbf":                  nbf.Unix(),
		"exp":                  r.IssuedAt.Add(r.TTL).Unix(),
	})
	if err != nil {
		return "", fmt.Errorf("protocol: token claims: %w", err)
	}
	signing := b64.EncodeToString(hdr) + "." + b64.EncodeToString(payload)
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write([]byte(signing))
	return signing + "." + b64.EncodeToString(mac.Sum(nil)), nil
}
