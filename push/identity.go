package push

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// Device identity tokens let a device manage its own registration and interests without the
// app secret (X-Sockudo-Device-Identity-Token, or Authorization: Bearer). A token is 32
// random bytes, base64url without padding (43 characters), issued once when the device is
// first registered (or rotated) and stored only as a hash.
//
// The hash is SHA-256 rather than Sockudo's PBKDF2 (120,000 rounds): a key-stretching hash
// protects low-entropy passwords, while these tokens carry 256 random bits, so a single hash
// is as strong and costs microseconds instead of tens of milliseconds per device request.

// identityPrefix marks a stored token hash.
const identityPrefix = "sha256$"

// IdentityTokenLen is the length of a device identity token.
const IdentityTokenLen = 43

// NewIdentityToken returns a fresh device identity token and the hash to store.
func NewIdentityToken() (token, hash string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashIdentityToken(token)
}

// HashIdentityToken returns the stored form of token.
func HashIdentityToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return identityPrefix + hex.EncodeToString(sum[:])
}

// CheckIdentityToken validates the shape of a presented token: 43 base64url characters.
func CheckIdentityToken(token string) *Error {
	if token == "" {
		return errf(Unauthorized, "device identity token is required (X-Sockudo-Device-Identity-Token)")
	}
	if len(token) != IdentityTokenLen {
		return errf(Unauthorized, "malformed device identity token: expected %d base64url characters, got %d", IdentityTokenLen, len(token))
	}
	if _, err := base64.RawURLEncoding.DecodeString(token); err != nil {
		return errf(Unauthorized, "malformed device identity token: not base64url")
	}
	return nil
}

// VerifyIdentityToken reports whether token matches the stored hash, in constant time.
func VerifyIdentityToken(token, hash string) bool {
	if CheckIdentityToken(token) != nil || !strings.HasPrefix(hash, identityPrefix) {
		return false
	}
	want := HashIdentityToken(token)
	return subtle.ConstantTimeCompare([]byte(want), []byte(hash)) == 1
}

// BearerToken extracts the identity token of a request from its
// X-Sockudo-Device-Identity-Token header value, else from an Authorization: Bearer value.
func BearerToken(identityHeader, authorization string) string {
	if identityHeader != "" {
		return strings.TrimSpace(identityHeader)
	}
	if v, ok := strings.CutPrefix(authorization, "Bearer "); ok {
		return strings.TrimSpace(v)
	}
	return ""
}

// newID returns a random UUID (v4) string.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func itoa(i int) string { return strconv.Itoa(i) }

func asPushError(err error, pe **Error) bool { return errors.As(err, pe) }

func asTypeError(err error, te **json.UnmarshalTypeError) bool { return errors.As(err, te) }

// Cursors are opaque to clients: base64url of {"a": app id, "k": list kind, "p": position}.
// A cursor from another app or another list is refused.

type cursor struct {
	// Bytes (base64 in the JSON), so any value survives the round trip exactly.
	App  []byte `json:"a"`
	Kind []byte `json:"k"`
	Pos  []byte `json:"p"`
}

// EncodeCursor returns the cursor continuing list kind of appID after position pos.
func EncodeCursor(appID, kind, pos string) string {
	b, _ := json.Marshal(cursor{[]byte(appID), []byte(kind), []byte(pos)})
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor returns the position of a cursor of list kind of appID ("" for no cursor).
func DecodeCursor(appID, kind, s string) (string, *Error) {
	if s == "" {
		return "", nil
	}
	if len(s) > 2048 {
		return "", errf(Invalid, "cursor is too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c cursor
	if err != nil || json.Unmarshal(b, &c) != nil || len(c.Pos) == 0 {
		return "", errf(Invalid, "malformed cursor: pass next_cursor from the previous page unchanged")
	}
	if string(c.App) != appID || string(c.Kind) != kind {
		return "", errf(Invalid, "cursor belongs to another list")
	}
	return string(c.Pos), nil
}

// ParseLimit parses a page size: default 100, 1 to 1000.
func ParseLimit(s string) (int, *Error) {
	if s == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 1000 {
		return 0, errf(Invalid, "limit must be between 1 and 1000")
	}
	return n, nil
}

func asURLError(err error, ue **url.Error) bool { return errors.As(err, ue) }
