package httpapi

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// Limits of the V2 publish fields.
const (
	maxTags              = 64
	maxTagKeyBytes       = 128
	maxTagValueBytes     = 1024
	maxHeaders           = 64
	maxExtrasBytes       = 8 << 10
	maxIdempotencyKeyLen = 128
)

// v2Fields are the validated V2 members of one publish.
type v2Fields struct {
	tags      map[string]string
	extras    []byte // compact JSON object, nil when absent
	ephemeral bool
	// idemKey is the idempotency key: the body's idempotency_key, else extras.idempotencyKey.
	idemKey string
}

// parseV2Fields validates tags (a flat string map), extras (an object whose headers are a
// flat map of string, number or bool, with boolean ephemeral and echo and a string
// idempotencyKey; other members pass through) and the idempotency key.
func parseV2Fields(rawTags, rawExtras json.RawMessage, idemKey *string) (v2Fields, *apiError) {
	var f v2Fields
	if raw := bytes.TrimSpace(rawTags); len(raw) > 0 && string(raw) != "null" {
		if raw[0] != '{' {
			return f, badRequest("tags must be an object of string values")
		}
		var tags map[string]json.RawMessage
		if err := json.Unmarshal(raw, &tags); err != nil {
			return f, badRequest("tags must be an object of string values: %v", err)
		}
		if len(tags) > maxTags {
			return f, limitExceeded("tags has %d entries, the limit is %d", len(tags), maxTags)
		}
		f.tags = make(map[string]string, len(tags))
		for k, v := range tags {
			var s string
			if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
				return f, badRequest("tags.%s must be a string", k)
			}
			if k == "" || len(k) > maxTagKeyBytes || len(s) > maxTagValueBytes {
				return f, limitExceeded("tags.%s: keys are 1..%d bytes and values at most %d", k, maxTagKeyBytes, maxTagValueBytes)
			}
			f.tags[k] = s
		}
		if len(f.tags) == 0 {
			f.tags = nil
		}
	}
	if raw := bytes.TrimSpace(rawExtras); len(raw) > 0 && string(raw) != "null" {
		if len(raw) > maxExtrasBytes {
			return f, limitExceeded("extras is %d bytes, the limit is %d", len(raw), maxExtrasBytes)
		}
		if raw[0] != '{' {
			return f, badRequest("extras must be an object")
		}
		var e struct {
			Headers        json.RawMessage `json:"headers"`
			Ephemeral      json.RawMessage `json:"ephemeral"`
			Echo           json.RawMessage `json:"echo"`
			IdempotencyKey json.RawMessage `json:"idempotencyKey"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return f, badRequest("extras must be an object: %v", err)
		}
		if err := checkHeaders(e.Headers); err != nil {
			return f, err
		}
		for name, v := range map[string]json.RawMessage{"ephemeral": e.Ephemeral, "echo": e.Echo} {
			if len(v) > 0 && string(v) != "null" && string(v) != "true" && string(v) != "false" {
				return f, badRequest("extras.%s must be a boolean", name)
			}
		}
		f.ephemeral = string(e.Ephemeral) == "true"
		if len(e.IdempotencyKey) > 0 && string(e.IdempotencyKey) != "null" {
			var k string
			if json.Unmarshal(e.IdempotencyKey, &k) != nil {
				return f, badRequest("extras.idempotencyKey must be a string")
			}
			if idemKey != nil && *idemKey == "" {
				*idemKey = k
				if k == "" {
					return f, badRequest("extras.idempotencyKey must not be empty")
				}
			}
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, raw); err != nil {
			return f, badRequest("extras: %v", err)
		}
		if compact.Len() > 2 { // "{}" carries nothing
			f.extras = compact.Bytes()
		}
	}
	if idemKey != nil {
		if len(*idemKey) > maxIdempotencyKeyLen || !utf8.ValidString(*idemKey) {
			return f, badRequest("idempotency key must be valid UTF-8 of at most %d bytes", maxIdempotencyKeyLen)
		}
		f.idemKey = *idemKey
	}
	return f, nil
}

// checkHeaders accepts a flat object of string, number or boolean values.
func checkHeaders(raw json.RawMessage) *apiError {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if raw[0] != '{' {
		return badRequest("extras.headers must be an object")
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(raw, &h); err != nil {
		return badRequest("extras.headers must be an object: %v", err)
	}
	if len(h) > maxHeaders {
		return limitExceeded("extras.headers has %d entries, the limit is %d", len(h), maxHeaders)
	}
	for k, v := range h {
		v = bytes.TrimSpace(v)
		if len(v) == 0 || v[0] == '{' || v[0] == '[' || string(v) == "null" {
			return badRequest("extras.headers.%s must be a string, number or boolean (headers are flat)", k)
		}
	}
	return nil
}
