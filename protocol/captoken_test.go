package protocol

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	tKey    = "app-key"
	tSecret = "app-secret"
)

var tNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func mint(t testing.TB, r TokenRequest) string {
	t.Helper()
	if r.IssuedAt.IsZero() {
		r.IssuedAt = tNow
	}
	if r.TTL == 0 {
		r.TTL = time.Hour
	}
	if r.ClientID == "" {
		r.ClientID = "user-42"
	}
	if r.JTI == "" {
		r.JTI = "jti-1"
	}
	if r.Capability == nil {
		r.Capability = map[string][]string{"private-orders:*": {"subscribe", "history"}, "presence-room": {"subscribe", "presence"}, "*": {"publish"}}
	}
	tok, err := SignCapabilityToken(tKey, tSecret, r)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// handmade signs an arbitrary header and payload.
func handmade(header, payload, secret string) string {
	enc := base64.RawURLEncoding
	s := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(s))
	return s + "." + enc.EncodeToString(mac.Sum(nil))
}

func TestParseCapabilityTokenValid(t *testing.T) {
	c, err := ParseCapabilityToken(mint(t, TokenRequest{}), tKey, tSecret, tNow)
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientID != "user-42" || c.JTI != "jti-1" || !c.ExpiresAt.Equal(tNow.Add(time.Hour)) || !c.IssuedAt.Equal(tNow) {
		t.Fatalf("claims = %+v", c)
	}
	for _, tt := range []struct {
		op   Op
		ch   string
		want bool
	}{
		{OpSubscribe, "private-orders:1", true},
		{OpHistory, "private-orders:", true},
		{OpSubscribe, "private-orders", false},
		{OpPresence, "presence-room", true},
		{OpPresence, "presence-room2", false},
		{OpPublish, "anything", true},
		{OpSubscribe, "anything", false},
	} {
		if got := c.Capabilities.Allows(tt.op, tt.ch); got != tt.want {
			t.Errorf("Allows(%s, %s) = %v, want %v", tt.op, tt.ch, got, tt.want)
		}
	}
	var none *Capabilities
	if !none.Allows(OpSubscribe, "x") {
		t.Error("no token must allow everything")
	}
	// Capability as an object rather than a string, suffix and infix wildcards, underscores.
	payload := `{"x-sockudo-capability":{"*-orders":["subscribe"],"private-*:input":["message_update_own"]},"x-sockudo-client-id":"u","jti":"j","iat":` +
		itoa(tNow.Unix()) + `,"exp":` + itoa(tNow.Add(time.Minute).Unix()) + `}`
	c, err = ParseCapabilityToken(handmade(`{"alg":"HS256","kid":"app-key"}`, payload, tSecret), tKey, tSecret, tNow)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Capabilities.Allows(OpSubscribe, "eu-orders") || c.Capabilities.Allows(OpSubscribe, "eu-orders2") ||
		!c.Capabilities.Allows("message-update-own", "private-chat:input") || c.Capabilities.Allows("message-update-own", "private-chat") {
		t.Error("wildcard patterns matched wrongly")
	}
}

func itoa(n int64) string { return formatInt(n) }

func formatInt(n int64) string { return strconv.FormatInt(n, 10) }

func TestParseCapabilityTokenRefused(t *testing.T) {
	good := mint(t, TokenRequest{})
	parts := strings.Split(good, ".")
	iat, exp := formatInt(tNow.Unix()), formatInt(tNow.Add(time.Hour).Unix())
	claims := func(extra string) string {
		return `{"x-sockudo-capability":"{\"*\":[\"subscribe\"]}","x-sockudo-client-id":"u","jti":"j","iat":` + iat + `,"exp":` + exp + extra + `}`
	}
	hdr := `{"alg":"HS256","kid":"app-key"}`
	tests := []struct {
		name, token, want string
	}{
		{"empty", "", "malformed"},
		{"two parts", "a.b", "malformed"},
		{"bad base64 header", "@@@.b.c", "header is not base64url"},
		{"header not JSON", handmade("nope", claims(""), tSecret), "header is not a JSON object"},
		{"alg none", handmade(`{"alg":"none","kid":"app-key"}`, claims(""), tSecret), `"none" is not allowed`},
		{"alg RS256", handmade(`{"alg":"RS256","kid":"app-key"}`, claims(""), tSecret), `"RS256" is not allowed`},
		{"no alg", handmade(`{"kid":"app-key"}`, claims(""), tSecret), "no alg"},
		{"wrong kid", handmade(`{"alg":"HS256","kid":"other"}`, claims(""), tSecret), "kid does not match"},
		{"no kid", handmade(`{"alg":"HS256"}`, claims(""), tSecret), "kid does not match"},
		{"wrong secret", handmade(hdr, claims(""), "other"), "signature is invalid"},
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(claims(""))) + "." + parts[2], "signature is invalid"},
		{"too big", strings.Repeat("a", MaxTokenBytes+1), "larger than 8192"},
		{"claims not JSON", handmade(hdr, "[]", tSecret), "claims are not a JSON object"},
		{"no exp", handmade(hdr, `{"x-sockudo-capability":{},"x-sockudo-client-id":"u","jti":"j","iat":`+iat+`}`, tSecret), "no valid exp"},
		{"expired", mint(t, TokenRequest{IssuedAt: tNow.Add(-2 * time.Hour), TTL: time.Hour}), "expired"},
		{"not yet valid", mint(t, TokenRequest{NotBefore: tNow.Add(time.Minute), TTL: 2 * time.Minute}), "not valid yet"},
		{"iat in the future", handmade(hdr, strings.Replace(claims(""), `"iat":`+iat, `"iat":`+formatInt(tNow.Add(time.Minute).Unix()), 1), tSecret), "iat is in the future"},
		{"too long", mint(t, TokenRequest{TTL: 25 * time.Hour}), "lifetime exceeds 24h"},
		{"empty client id", handmade(hdr, strings.Replace(claims(""), `"u"`, `""`, 1), tSecret), "client-id must be"},
		{"long client id", mint(t, TokenRequest{ClientID: strings.Repeat("c", 129)}), "client-id must be"},
		{"no jti", handmade(hdr, strings.Replace(claims(""), `"jti":"j",`, ``, 1), tSecret), "jti must be"},
		{"unknown op", mint(t, TokenRequest{Capability: map[string][]string{"*": {"fly"}}}), `unknown capability operation "fly"`},
		{"two wildcards", mint(t, TokenRequest{Capability: map[string][]string{"a*b*": {"subscribe"}}}), "2 wildcards"},
		{"empty pattern", mint(t, TokenRequest{Capability: map[string][]string{"": {"subscribe"}}}), "pattern is empty"},
		{"capability not object", handmade(hdr, strings.Replace(claims(""), `"{\"*\":[\"subscribe\"]}"`, `[1]`, 1), tSecret), "must be an object"},
		{"far-future nbf", handmade(hdr, strings.Replace(claims(""), `"exp":`, `"nbf":1e10,"exp":`, 1), tSecret), "not valid yet"},
		{"string exp", handmade(hdr, strings.Replace(claims(""), `"exp":`+exp, `"exp":"`+exp+`"`, 1), tSecret), "exp claim must be a number"},
		{"trailing data", handmade(hdr, claims("")+"{}", tSecret), "trailing data"},
		{"no capability", handmade(hdr, strings.Replace(claims(""), `"x-sockudo-capability":"{\"*\":[\"subscribe\"]}",`, ``, 1), tSecret), "no x-sockudo-capability"},
	}
	many := map[string][]string{}
	for i := range MaxTokenPatterns + 1 {
		many["p"+formatInt(int64(i))] = []string{"subscribe"}
	}
	tests = append(tests, struct{ name, token, want string }{"too many patterns", mint(t, TokenRequest{Capability: many}), "101 patterns"})
	for _, tt := range tests {
		c, err := ParseCapabilityToken(tt.token, tKey, tSecret, tNow)
		if err == nil {
			t.Errorf("%s: accepted (%+v)", tt.name, c)
			continue
		}
		if err.Code != CodeUnauthorized || !strings.HasPrefix(err.Message, "Authentication error: ") || !strings.Contains(err.Message, tt.want) {
			t.Errorf("%s: error %d %q, want 4009 mentioning %q", tt.name, err.Code, err.Message, tt.want)
		}
	}
	// Leeway: 30 s past exp is still accepted, 31 s is not.
	tok := mint(t, TokenRequest{TTL: time.Minute})
	if _, err := ParseCapabilityToken(tok, tKey, tSecret, tNow.Add(90*time.Second)); err != nil {
		t.Errorf("within leeway: %v", err)
	}
	if _, err := ParseCapabilityToken(tok, tKey, tSecret, tNow.Add(91*time.Second)); err == nil {
		t.Error("past leeway: accepted")
	}
}

func FuzzParseCapabilityToken(f *testing.F) {
	f.Add(mint(f, TokenRequest{}))
	f.Add(handmade(`{"alg":"HS256","kid":"app-key"}`, `{"x-sockudo-capability":{"a*":["subscribe"]},"x-sockudo-client-id":"u","jti":"j","iat":1,"exp":2}`, tSecret))
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := ParseCapabilityToken(tok, tKey, tSecret, tNow)
		if err != nil {
			if c != nil || err.Code != CodeUnauthorized {
				t.Fatalf("error %v with claims %v", err, c)
			}
			return
		}
		if c.ClientID == "" || c.JTI == "" || c.ExpiresAt.Sub(c.IssuedAt) > MaxTokenLifetime {
			t.Fatalf("accepted bad claims %+v", c)
		}
		c.Capabilities.Allows(OpSubscribe, "private-orders:1")
	})
}
