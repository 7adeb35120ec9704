package protocol

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// APIQuery is the parsed query string of a signed HTTP API request.
type APIQuery struct {
	AuthKey       string
	AuthTimestamp string
	AuthVersion   string
	AuthSignature string
	BodyMD5       string
	HasBodyMD5    bool
	// Params holds every parameter but auth_signature, keys lowercased, last value kept.
	Params map[string]string
}

// Errors returned by ParseAPIQuery; an HTTP layer maps them to 400.
var (
	ErrAPIQueryMissing   = errors.New("missing authentication query parameters")
	ErrAPIQueryMalformed = errors.New("malformed query string")
)

// APIAuthWindow is how far an auth_timestamp may be from the server clock, either way.
const APIAuthWindow = 600 * time.Second

// MaxAPIQueryLength bounds the raw query string ParseAPIQuery accepts.
const MaxAPIQueryLength = 16 << 10

// ParseAPIQuery parses a raw (still percent-encoded) query string of a signed request.
// Values are percent-decoded with '+' as space; keys are lowercased; a duplicated auth_* or
// body_md5 parameter is an error, any other duplicate keeps its last value.
func ParseAPIQuery(rawQuery string) (*APIQuery, error) {
	if rawQuery == "" {
		return nil, ErrAPIQueryMissing
	}
	if len(rawQuery) > MaxAPIQueryLength {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrAPIQueryMalformed, MaxAPIQueryLength)
	}
	q := &APIQuery{Params: make(map[string]string)}
	seen := map[string]bool{}
	for part := range strings.SplitSeq(rawQuery, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrAPIQueryMalformed, err)
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrAPIQueryMalformed, err)
		}
		key = strings.ToLower(key)
		isAuth := strings.HasPrefix(key, "auth_") || key == "body_md5"
		if isAuth && seen[key] {
			return nil, fmt.Errorf("%w: duplicate parameter %s", ErrAPIQueryMalformed, key)
		}
		seen[key] = true
		switch key {
		case "auth_signature":
			q.AuthSignature = val
			continue
		case "auth_key":
			q.AuthKey = val
		case "auth_timestamp":
			q.AuthTimestamp = val
		case "auth_version":
			q.AuthVersion = val
		case "body_md5":
			q.BodyMD5, q.HasBodyMD5 = val, true
		}
		q.Params[key] = val
	}
	if len(seen) == 0 {
		return nil, ErrAPIQueryMalformed
	}
	if q.AuthKey == "" || q.AuthSignature == "" {
		return nil, ErrAPIQueryMissing
	}
	return q, nil
}

// CanonicalQuery joins the signed parameters as key=value pairs sorted by key, unescaped.
func (q *APIQuery) CanonicalQuery() string {
	keys := make([]string, 0, len(q.Params))
	for k := range q.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(q.Params[k])
	}
	return b.String()
}

// APIStringToSign is "METHOD\nPATH\nCANONICAL_QUERY" with the raw request path.
func APIStringToSign(method, path, canonicalQuery string) string {
	return strings.ToUpper(method) + "\n" + path + "\n" + canonicalQuery
}

// VerifyAPISignature checks q.AuthSignature against the request in constant time.
func (q *APIQuery) VerifyAPISignature(secret, method, path string) bool {
	want := HMACHex(secret, APIStringToSign(method, path, q.CanonicalQuery()))
	return hmac.Equal([]byte(q.AuthSignature), []byte(want))
}

// CheckTimestamp verifies auth_timestamp is an integer within APIAuthWindow of now.
func (q *APIQuery) CheckTimestamp(now time.Time) error {
	ts, err := strconv.ParseInt(q.AuthTimestamp, 10, 64)
	if err != nil {
		return errors.New("auth_timestamp missing or not an integer")
	}
	d := now.Unix() - ts
	if d < 0 {
		d = -d
	}
	if d > int64(APIAuthWindow/time.Second) {
		return errors.New("timestamp expired or too far in the future")
	}
	return nil
}

// CheckBodyMD5 verifies body_md5 against the body: required (and exact) for POST, refused
// for any other method.
func (q *APIQuery) CheckBodyMD5(method string, body []byte) error {
	if !strings.EqualFold(method, "POST") {
		if q.HasBodyMD5 {
			return errors.New("body_md5 is only allowed on POST requests")
		}
		return nil
	}
	if !q.HasBodyMD5 {
		return errors.New("body_md5 is required on POST requests")
	}
	sum := md5.Sum(body)
	if !hmac.Equal([]byte(q.BodyMD5), []byte(hex.EncodeToString(sum[:]))) {
		return errors.New("body_md5 does not match the request body")
	}
	return nil
}

// SignAPIRequest builds the query string of a signed request, as the Pusher SDKs do: it adds
// auth_key, auth_timestamp, auth_version=1.0 and (for a non-nil body) body_md5 to params,
// signs, and returns the percent-encoded query including auth_signature.
func SignAPIRequest(key, secret, method, path string, params url.Values, body []byte, now time.Time) string {
	v := url.Values{}
	for k, vs := range params {
		v[strings.ToLower(k)] = vs
	}
	v.Set("auth_key", key)
	v.Set("auth_timestamp", strconv.FormatInt(now.Unix(), 10))
	v.Set("auth_version", "1.0")
	if body != nil {
		sum := md5.Sum(body)
		v.Set("body_md5", hex.EncodeToString(sum[:]))
	}
	q := &APIQuery{Params: map[string]string{}}
	for k, vs := range v {
		q.Params[k] = vs[len(vs)-1]
	}
	v.Set("auth_signature", HMACHex(secret, APIStringToSign(method, path, q.CanonicalQuery())))
	return v.Encode()
}
