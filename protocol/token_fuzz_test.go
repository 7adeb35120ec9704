package protocol

// Fuzz targets that reach past the signature check. FuzzParseCapabilityToken (captoken_test.go)
// feeds whole token strings, so almost every mutation dies at "signature is invalid"; these
// sign what the fuzzer produces with the app secret, so the header and claims readers and the
// pattern matcher are explored too.

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzCapabilityTokenClaims signs an arbitrary header and claims payload correctly and checks
// that parsing never panics, that every refusal is a 4009 "Authentication error: ...", and that
// whatever is accepted satisfies the documented limits.
func FuzzCapabilityTokenClaims(f *testing.F) {
	iat, exp := formatInt(tNow.Unix()), formatInt(tNow.Add(time.Hour).Unix())
	f.Add(`{"alg":"HS256","kid":"app-key"}`, `{"x-sockudo-capability":{"*":["subscribe"],"a*b":["message_update_own"]},"x-sockudo-client-id":"u","jti":"j","iat":`+iat+`,"exp":`+exp+`}`)
	f.Add(`{"alg":"HS256","typ":"JWT","kid":"app-key"}`, `{"x-sockudo-capability":"{\"orders:*\":[\"history\"]}","x-sockudo-client-id":"user-42","jti":"6d1f","iat":`+iat+`,"nbf":`+iat+`,"exp":`+exp+`}`)
	f.Add(`{"alg":"HS256","kid":"app-key"}`, `{"x-sockudo-capability":{"*-x":[]},"x-sockudo-client-id":"u","jti":"j","iat":`+iat+`.75,"nbf":1e10,"exp":`+exp+`.5}`)
	f.Add(`{"alg":"none"}`, `{}`)
	f.Add(`{"alg":"HS256","kid":"app-key"}`, `[]`)
	f.Fuzz(func(t *testing.T, header, payload string) {
		c, err := ParseCapabilityToken(handmade(header, payload, tSecret), tKey, tSecret, tNow)
		if err != nil {
			if c != nil || err.Code != CodeUnauthorized || !strings.HasPrefix(err.Message, "Authentication error: ") {
				t.Fatalf("refusal %v with claims %v", err, c)
			}
			return
		}
		switch {
		case len(c.ClientID) == 0 || len(c.ClientID) > 128:
			t.Fatalf("accepted client id of %d bytes", len(c.ClientID))
		case len(c.JTI) == 0 || len(c.JTI) > 128:
			t.Fatalf("accepted jti of %d bytes", len(c.JTI))
		case c.ExpiresAt.Before(tNow.Add(-TokenLeeway)):
			t.Fatalf("accepted an expired token: exp %v", c.ExpiresAt)
		case c.IssuedAt.After(tNow.Add(TokenLeeway)):
			t.Fatalf("accepted iat in the future: %v", c.IssuedAt)
		case c.ExpiresAt.Sub(c.IssuedAt) > MaxTokenLifetime:
			t.Fatalf("accepted a lifetime of %v", c.ExpiresAt.Sub(c.IssuedAt))
		case !c.NotBefore.IsZero() && c.NotBefore.After(tNow.Add(TokenLeeway)):
			t.Fatalf("accepted nbf in the future: %v", c.NotBefore)
		case c.Capabilities == nil:
			t.Fatal("accepted token without capabilities (that would allow everything)")
		}
		for _, ch := range []string{"", "*", "orders:1", "a-b", header} {
			c.Capabilities.Allows(OpSubscribe, ch)
		}
	})
}

// FuzzCapabilitiesAllows mints a token granting subscribe on one fuzzed pattern and compares
// Allows with a direct reading of the spec: "*", an exact name, or one "*" standing for any
// (possibly empty) run of characters between a prefix and a suffix.
func FuzzCapabilitiesAllows(f *testing.F) {
	for _, s := range [][2]string{
		{"*", ""}, {"orders:*", "orders:1"}, {"*-orders", "eu-orders"}, {"private-*:input", "private-:input"},
		{"private-*:input", "private-input"}, {"exact", "exact"}, {"Exact", "exact"}, {"a*a", "a"}, {"a*a", "aa"}, {"**", "x"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, channel string) {
		if !utf8.ValidString(pattern) {
			return // JSON would carry U+FFFD instead: a different pattern
		}
		tok, serr := SignCapabilityToken(tKey, tSecret, TokenRequest{ClientID: "u", JTI: "j", IssuedAt: tNow, TTL: time.Minute,
			Capability: map[string][]string{pattern: {"subscribe"}}})
		if serr != nil {
			t.Fatal(serr)
		}
		c, err := ParseCapabilityToken(tok, tKey, tSecret, tNow)
		stars := strings.Count(pattern, "*")
		if err != nil {
			if pattern != "" && stars < 2 && len(tok) <= MaxTokenBytes {
				t.Fatalf("pattern %q refused: %v", pattern, err)
			}
			return
		}
		if pattern == "" || stars > 1 {
			t.Fatalf("pattern %q accepted", pattern)
		}
		want := channel == pattern
		if stars == 1 {
			pre, suf, _ := strings.Cut(pattern, "*")
			want = len(channel) >= len(pre)+len(suf) && strings.HasPrefix(channel, pre) && strings.HasSuffix(channel, suf)
		}
		if got := c.Capabilities.Allows(OpSubscribe, channel); got != want {
			t.Fatalf("pattern %q, channel %q: Allows = %v, want %v", pattern, channel, got, want)
		}
		if c.Capabilities.Allows(OpPublish, channel) {
			t.Fatalf("pattern %q grants publish", pattern)
		}
	})
}
