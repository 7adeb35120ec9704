package protocol

// Complementary tests for the capability-token parser in captoken.go (captoken_test.go holds
// the first table): whole refusal messages, every operation in both spellings, the pattern
// matcher, the leeway and size boundaries, and interoperability with golang-jwt in both
// directions (a customer backend minting with that library, a client verifying ours).

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokClaims is a claims payload with the given capability member (raw JSON) and times.
func tokClaims(capability string, iat, exp time.Time, extra string) string {
	return `{"x-sockudo-capability":` + capability + `,"x-sockudo-client-id":"user-42","jti":"jti-1","iat":` +
		formatInt(iat.Unix()) + `,"exp":` + formatInt(exp.Unix()) + extra + `}`
}

func TestCapabilityTokenRefusalMessages(t *testing.T) {
	hdr := `{"alg":"HS256","typ":"JWT","kid":"app-key"}`
	okCap := `{"*":["subscribe"]}`
	good := func(extra string) string { return tokClaims(okCap, tNow, tNow.Add(time.Hour), extra) }
	signed := mint(t, TokenRequest{})
	parts := strings.Split(signed, ".")
	flipped := []byte(parts[2])
	if flipped[0] == 'A' {
		flipped[0] = 'B'
	} else {
		flipped[0] = 'A'
	}
	tests := []struct{ name, token, msg string }{
		{"one part", "abc", "token is malformed: a JWT has three dot-separated parts, got 1"},
		{"four parts", "a.b.c.d", "token is malformed: a JWT has three dot-separated parts, got 4"},
		{"header not base64url", "a+b.c.d", "token is malformed: header is not base64url"},
		{"header padded base64", base64.URLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"app-key"}`)) + ".b.c", "token is malformed: header is not base64url"},
		{"header not an object", handmade(`[1]`, good(""), tSecret), "token is malformed: header is not a JSON object"},
		{"alg none", handmade(`{"alg":"none","kid":"app-key"}`, good(""), ""), `token algorithm "none" is not allowed (HS256 only)`},
		{"alg HS384", handmade(`{"alg":"HS384","kid":"app-key"}`, good(""), tSecret), `token algorithm "HS384" is not allowed (HS256 only)`},
		{"alg RS256", handmade(`{"alg":"RS256","kid":"app-key"}`, good(""), tSecret), `token algorithm "RS256" is not allowed (HS256 only)`},
		{"alg lower case", handmade(`{"alg":"hs256","kid":"app-key"}`, good(""), tSecret), `token algorithm "hs256" is not allowed (HS256 only)`},
		{"alg long", handmade(`{"alg":"`+strings.Repeat("X", 40)+`","kid":"app-key"}`, good(""), tSecret), `token algorithm "XXXXXXXXXXXXXXXX..." is not allowed (HS256 only)`},
		{"no alg", handmade(`{"kid":"app-key"}`, good(""), tSecret), "token header has no alg"},
		{"wrong kid", handmade(`{"alg":"HS256","kid":"App-Key"}`, good(""), tSecret), "token kid does not match the app key"},
		{"tampered signature", parts[0] + "." + parts[1] + "." + string(flipped), "token signature is invalid"},
		{"signature not base64url", parts[0] + "." + parts[1] + ".!!", "token is malformed: signature is not base64url"},
		{"empty signature", parts[0] + "." + parts[1] + ".", "token signature is invalid"},
		{"signed with another secret", handmade(hdr, good(""), "not-the-secret"), "token signature is invalid"},
		{"claims not an object", handmade(hdr, `"x"`, tSecret), "token is malformed: claims are not a JSON object with the expected types"},
		{"client id not a string", handmade(hdr, strings.Replace(good(""), `"user-42"`, `42`, 1), tSecret), "token is malformed: claims are not a JSON object with the expected types"},
		{"exp missing", handmade(hdr, `{"x-sockudo-capability":{},"x-sockudo-client-id":"u","jti":"j","iat":1}`, tSecret), "token has no valid exp claim"},
		{"exp negative", handmade(hdr, `{"x-sockudo-capability":{},"x-sockudo-client-id":"u","jti":"j","iat":1,"exp":-5}`, tSecret), "token has no valid exp claim"},
		{"expired", mint(t, TokenRequest{IssuedAt: tNow.Add(-time.Hour), TTL: 59 * time.Minute}), "token has expired"},
		{"nbf in the future", mint(t, TokenRequest{NotBefore: tNow.Add(31 * time.Second)}), "token is not valid yet"},
		{"nbf not a number", handmade(hdr, good(`,"nbf":true`), tSecret), "token is malformed: claims are not a JSON object with the expected types"},
		{"iat missing", handmade(hdr, strings.Replace(good(""), `"iat":`+formatInt(tNow.Unix())+`,`, ``, 1), tSecret), "token has no valid iat claim"},
		{"iat in the future", handmade(hdr, tokClaims(okCap, tNow.Add(31*time.Second), tNow.Add(time.Hour), ""), tSecret), "token iat is in the future"},
		{"lifetime over 24h", mint(t, TokenRequest{TTL: 24*time.Hour + time.Second}), "token lifetime exceeds 24h"},
		{"client id missing", handmade(hdr, strings.Replace(good(""), `"x-sockudo-client-id":"user-42",`, ``, 1), tSecret), "token x-sockudo-client-id must be 1..128 bytes"},
		{"client id 129 bytes", mint(t, TokenRequest{ClientID: strings.Repeat("é", 64) + "x"}), "token x-sockudo-client-id must be 1..128 bytes"},
		{"jti empty", handmade(hdr, strings.Replace(good(""), `"jti-1"`, `""`, 1), tSecret), "token jti must be 1..128 bytes"},
		{"jti 129 bytes", mint(t, TokenRequest{JTI: strings.Repeat("j", 129)}), "token jti must be 1..128 bytes"},
		{"capability null", handmade(hdr, tokClaims(`null`, tNow, tNow.Add(time.Hour), ""), tSecret), "token has no x-sockudo-capability claim"},
		{"capability array", handmade(hdr, tokClaims(`["subscribe"]`, tNow, tNow.Add(time.Hour), ""), tSecret), "token x-sockudo-capability must be an object of pattern: [operations]"},
		{"capability string not JSON", handmade(hdr, tokClaims(`"{oops"`, tNow, tNow.Add(time.Hour), ""), tSecret), "token x-sockudo-capability must be an object of pattern: [operations]"},
		{"capability ops not a list", handmade(hdr, tokClaims(`{"*":"subscribe"}`, tNow, tNow.Add(time.Hour), ""), tSecret), "token x-sockudo-capability must be an object of pattern: [operations]"},
		{"unknown op", mint(t, TokenRequest{Capability: map[string][]string{"orders:*": {"subscribe", "x"}}}), `unknown capability operation "x" for pattern "orders:*"`},
		{"op with wrong case", mint(t, TokenRequest{Capability: map[string][]string{"a": {"Subscribe"}}}), `unknown capability operation "Subscribe" for pattern "a"`},
		{"empty pattern", mint(t, TokenRequest{Capability: map[string][]string{"": {"subscribe"}}}), "token capability pattern is empty"},
		{"three wildcards", mint(t, TokenRequest{Capability: map[string][]string{"*a*b*": {"subscribe"}}}), `token capability pattern "*a*b*" has 3 wildcards, at most one is allowed`},
	}
	for _, tt := range tests {
		c, err := ParseCapabilityToken(tt.token, tKey, tSecret, tNow)
		if err == nil {
			t.Errorf("%s: accepted (%+v)", tt.name, c)
			continue
		}
		if c != nil || err.Code != CodeUnauthorized || err.Message != "Authentication error: "+tt.msg {
			t.Errorf("%s:\n got %d %q\nwant 4009 %q", tt.name, err.Code, err.Message, "Authentication error: "+tt.msg)
		}
	}
}

func TestCapabilityTokenAllOperations(t *testing.T) {
	ops := []string{"subscribe", "publish", "history", "presence", "annotation-subscribe", "annotation-publish",
		"annotation-delete-own", "annotation-delete-any", "message-update-own", "message-update-any",
		"message-delete-own", "message-delete-any", "message-append-own", "message-append-any", "push-admin", "push-subscribe"}
	hyphen := map[string][]string{"hyphen:*": ops}
	var under []string
	for _, op := range ops {
		under = append(under, strings.ReplaceAll(op, "-", "_"))
	}
	hyphen["under:*"] = under
	c, err := ParseCapabilityToken(mint(t, TokenRequest{Capability: hyphen}), tKey, tSecret, tNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		for _, ch := range []string{"hyphen:1", "under:1"} {
			if !c.Capabilities.Allows(Op(op), ch) {
				t.Errorf("Allows(%s, %s) = false", op, ch)
			}
		}
		if c.Capabilities.Allows(Op(op), "other") {
			t.Errorf("Allows(%s, other) = true", op)
		}
	}
	// The Op constants are the normalised names.
	for _, op := range []Op{OpSubscribe, OpPublish, OpHistory, OpPresence} {
		if !c.Capabilities.Allows(op, "under:x") {
			t.Errorf("constant %s not granted", op)
		}
	}
}

func TestCapabilitiesAllowsPatterns(t *testing.T) {
	grants := map[string][]string{
		"*":               {"presence"},
		"orders:*":        {"subscribe"},
		"*-orders":        {"publish"},
		"private-*:input": {"history"},
		"exact":           {"subscribe"},
		"Case":            {"subscribe"},
		"empty-ops":       {},
	}
	c, err := ParseCapabilityToken(mint(t, TokenRequest{Capability: grants}), tKey, tSecret, tNow)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		op   Op
		ch   string
		want bool
	}{
		{OpPresence, "", true}, // "*" matches every name
		{OpPresence, "anything at all", true},
		{OpSubscribe, "orders:", true},
		{OpSubscribe, "orders:eu:1", true},
		{OpSubscribe, "orders", false},
		{OpSubscribe, "xorders:1", false},
		{OpSubscribe, "Orders:1", false}, // case-sensitive
		{OpPublish, "eu-orders", true},
		{OpPublish, "-orders", true},
		{OpPublish, "eu-orders:1", false},
		{OpHistory, "private-chat:input", true},
		{OpHistory, "private-:input", true},
		{OpHistory, "private-input", false}, // prefix and suffix must not overlap
		{OpHistory, "private-chat:inputs", false},
		{OpSubscribe, "exact", true},
		{OpSubscribe, "exact2", false},
		{OpSubscribe, "case", false},
		{OpSubscribe, "Case", true},
		{OpSubscribe, "empty-ops", false}, // a pattern with no operations grants nothing
		{OpPublish, "orders:1", false},    // the op must be granted by a matching pattern
		{"push-admin", "orders:1", false},
	}
	for _, tt := range tests {
		if got := c.Capabilities.Allows(tt.op, tt.ch); got != tt.want {
			t.Errorf("Allows(%s, %q) = %v, want %v", tt.op, tt.ch, got, tt.want)
		}
	}
	// Grants from several matching patterns add up.
	c2, err := ParseCapabilityToken(mint(t, TokenRequest{Capability: map[string][]string{"a:*": {"subscribe"}, "*:b": {"publish"}}}), tKey, tSecret, tNow)
	if err != nil {
		t.Fatal(err)
	}
	if !c2.Capabilities.Allows(OpSubscribe, "a:b") || !c2.Capabilities.Allows(OpPublish, "a:b") || c2.Capabilities.Allows(OpHistory, "a:b") {
		t.Error("grants of several matching patterns do not add up")
	}
	// An empty capability object is a token that grants nothing (not "no token").
	c3, err := ParseCapabilityToken(mint(t, TokenRequest{Capability: map[string][]string{}}), tKey, tSecret, tNow)
	if err != nil {
		t.Fatal(err)
	}
	if c3.Capabilities == nil || c3.Capabilities.Allows(OpSubscribe, "x") {
		t.Error("an empty capability object must grant nothing")
	}
}

func TestCapabilityTokenBoundaries(t *testing.T) {
	accept := func(name, tok string, now time.Time) {
		t.Helper()
		if _, err := ParseCapabilityToken(tok, tKey, tSecret, now); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	refuse := func(name, tok string, now time.Time, msg string) {
		t.Helper()
		if _, err := ParseCapabilityToken(tok, tKey, tSecret, now); err == nil || err.Message != "Authentication error: "+msg {
			t.Errorf("%s: got %v, want %q", name, err, msg)
		}
	}
	hdr := `{"alg":"HS256","kid":"app-key"}`
	okCap := `{"*":["subscribe"]}`
	accept("nbf now+30s", mint(t, TokenRequest{NotBefore: tNow.Add(30 * time.Second)}), tNow)
	refuse("nbf now+31s", mint(t, TokenRequest{NotBefore: tNow.Add(31 * time.Second)}), tNow, "token is not valid yet")
	accept("iat now+30s", handmade(hdr, tokClaims(okCap, tNow.Add(30*time.Second), tNow.Add(time.Hour), ""), tSecret), tNow)
	accept("lifetime exactly 24h", mint(t, TokenRequest{TTL: 24 * time.Hour}), tNow)
	accept("exp now-30s", mint(t, TokenRequest{IssuedAt: tNow.Add(-time.Hour), TTL: time.Hour - 30*time.Second}), tNow)
	refuse("exp now-31s", mint(t, TokenRequest{IssuedAt: tNow.Add(-time.Hour), TTL: time.Hour - 31*time.Second}), tNow, "token has expired")
	accept("client id and jti of 128 bytes", mint(t, TokenRequest{ClientID: strings.Repeat("c", 128), JTI: strings.Repeat("j", 128)}), tNow)
	many := map[string][]string{}
	for i := range MaxTokenPatterns {
		many["p"+formatInt(int64(i))+":*"] = []string{"subscribe"}
	}
	accept("100 patterns", mint(t, TokenRequest{Capability: many}), tNow)
	many["one-more"] = []string{"subscribe"}
	refuse("101 patterns", mint(t, TokenRequest{Capability: many}), tNow, "token grants 101 patterns, the limit is 100")

	// A correctly signed token is refused on size alone once it passes 8 KiB, and accepted
	// up to exactly 8192 bytes.
	pad := 0
	sized := func(n int) string {
		return mint(t, TokenRequest{Capability: map[string][]string{"a": {"subscribe"}, strings.Repeat("p", n): {"subscribe"}}})
	}
	for len(sized(pad)) < MaxTokenBytes-64 {
		pad += 64
	}
	for len(sized(pad+1)) <= MaxTokenBytes {
		pad++
	}
	atLimit, over := sized(pad), sized(pad+1)
	if len(atLimit) > MaxTokenBytes || len(over) <= MaxTokenBytes {
		t.Fatalf("sizes %d, %d do not straddle %d", len(atLimit), len(over), MaxTokenBytes)
	}
	accept("signed token at the size limit", atLimit, tNow)
	refuse("signed token over the size limit", over, tNow, "token is larger than 8192 bytes")
	refuse("9 KB token", sized(9000), tNow, "token is larger than 8192 bytes")

	// Claims come back as issued; nbf is optional and zero when absent.
	c, err := ParseCapabilityToken(handmade(hdr, tokClaims(okCap, tNow, tNow.Add(time.Hour), ""), tSecret), tKey, tSecret, tNow)
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientID != "user-42" || c.JTI != "jti-1" || !c.IssuedAt.Equal(tNow) || !c.ExpiresAt.Equal(tNow.Add(time.Hour)) || !c.NotBefore.IsZero() {
		t.Errorf("claims = %+v", c)
	}
}

func TestSignCapabilityTokenShape(t *testing.T) {
	if _, err := SignCapabilityToken(tKey, tSecret, TokenRequest{ClientID: "u", JTI: "j", TTL: time.Hour}); err == nil {
		t.Error("a token without IssuedAt was minted")
	}
	tok := mint(t, TokenRequest{TTL: 90 * time.Minute})
	parts := strings.Split(tok, ".")
	var hdr map[string]string
	var claims map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if json.Unmarshal(hb, &hdr) != nil || json.Unmarshal(pb, &claims) != nil {
		t.Fatalf("token parts are not JSON: %s / %s", hb, pb)
	}
	if hdr["alg"] != "HS256" || hdr["typ"] != "JWT" || hdr["kid"] != tKey {
		t.Errorf("header = %v", hdr)
	}
	if _, isString := claims["x-sockudo-capability"].(string); !isString {
		t.Errorf("capability claim is %T, want a string holding JSON (as Sockudo issues it)", claims["x-sockudo-capability"])
	}
	if claims["iat"] != float64(tNow.Unix()) || claims["nbf"] != float64(tNow.Unix()) || claims["exp"] != float64(tNow.Add(90*time.Minute).Unix()) {
		t.Errorf("dates iat=%v nbf=%v exp=%v", claims["iat"], claims["nbf"], claims["exp"])
	}
}

// TestCapabilityTokenJWTInterop checks that tokens minted by github.com/golang-jwt/jwt/v5 (what
// a Go backend would use) are read exactly like ours, and that ours verify with that library.
func TestCapabilityTokenJWTInterop(t *testing.T) {
	sign := func(m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		t.Helper()
		tok := jwt.NewWithClaims(m, claims)
		tok.Header["kid"] = tKey
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := func(capability any) jwt.MapClaims {
		return jwt.MapClaims{
			"x-sockudo-capability": capability, "x-sockudo-client-id": "user-42", "jti": "jti-1",
			"iat": tNow.Unix(), "nbf": tNow.Unix(), "exp": tNow.Add(time.Hour).Unix(),
		}
	}
	for name, capability := range map[string]any{
		"object": map[string][]string{"orders:*": {"subscribe", "message_update_own"}},
		"string": `{"orders:*":["subscribe","message-update-own"]}`,
	} {
		c, err := ParseCapabilityToken(sign(jwt.SigningMethodHS256, []byte(tSecret), base(capability)), tKey, tSecret, tNow)
		if err != nil {
			t.Errorf("golang-jwt HS256, capability as %s: %v", name, err)
			continue
		}
		if !c.Capabilities.Allows(OpSubscribe, "orders:1") || !c.Capabilities.Allows("message-update-own", "orders:1") || c.Capabilities.Allows(OpPublish, "orders:1") {
			t.Errorf("golang-jwt HS256, capability as %s: grants read wrongly", name)
		}
	}
	refused := map[string]string{
		"HS384": sign(jwt.SigningMethodHS384, []byte(tSecret), base(map[string][]string{"*": {"subscribe"}})),
		"HS512": sign(jwt.SigningMethodHS512, []byte(tSecret), base(map[string][]string{"*": {"subscribe"}})),
		"none":  sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, base(map[string][]string{"*": {"subscribe"}})),
	}
	for alg, tok := range refused {
		want := `Authentication error: token algorithm "` + alg + `" is not allowed (HS256 only)`
		if _, err := ParseCapabilityToken(tok, tKey, tSecret, tNow); err == nil || err.Message != want {
			t.Errorf("golang-jwt %s: got %v, want %q", alg, err, want)
		}
	}

	// Ours, verified by golang-jwt the way a strict verifier would.
	ours := mint(t, TokenRequest{TTL: time.Hour})
	p := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return tNow }),
		jwt.WithIssuedAt(), jwt.WithExpirationRequired())
	claims := jwt.MapClaims{}
	parsed, err := p.ParseWithClaims(ours, claims, func(tok *jwt.Token) (any, error) {
		if tok.Header["kid"] != tKey {
			t.Errorf("kid = %v", tok.Header["kid"])
		}
		return []byte(tSecret), nil
	})
	if err != nil || !parsed.Valid {
		t.Fatalf("golang-jwt refused our token: %v", err)
	}
	if exp, _ := claims.GetExpirationTime(); exp == nil || !exp.Equal(tNow.Add(time.Hour)) {
		t.Errorf("golang-jwt exp = %v", exp)
	}
	if sub := claims["x-sockudo-client-id"]; sub != "user-42" {
		t.Errorf("golang-jwt client id = %v", sub)
	}
}
