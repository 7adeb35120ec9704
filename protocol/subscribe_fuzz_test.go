package protocol

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParseModes: no input panics; raw annotations are wanted only when the modes name
// ANNOTATION_SUBSCRIBE, and every accepted mode is a known one.
func FuzzParseModes(f *testing.F) {
	for _, s := range []string{`["SUBSCRIBE","ANNOTATION_SUBSCRIBE"]`, `["SUBSCRIBE"]`, `[]`, `null`, `"SUBSCRIBE"`, `[1]`, `["annotation_subscribe"]`, `["X"]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ann, err := parseModes(json.RawMessage(b))
		if err != nil {
			return
		}
		var modes []string
		if json.Unmarshal(b, &modes) != nil {
			if ann || (len(b) != 0 && string(b) != "null") {
				t.Fatalf("%q accepted", b)
			}
			return
		}
		want := false
		for _, m := range modes {
			switch strings.ToUpper(m) {
			case "SUBSCRIBE":
			case "ANNOTATION_SUBSCRIBE":
				want = true
			default:
				t.Fatalf("unknown mode %q accepted", m)
			}
		}
		if ann != want {
			t.Fatalf("%s: annotations %v", b, ann)
		}
	})
}

// FuzzParseSubscribeV2: no subscribe data panics; an accepted request names a channel, and
// parsing is stable (the same input gives the same answer).
func FuzzParseSubscribeV2(f *testing.F) {
	for _, s := range []string{
		`{"channel":"a"}`, `"{\"channel\":\"a\"}"`, `{"channel":"private-a","auth":"k:s","channel_data":"{}"}`,
		`{"channel":"a","rewind":10}`, `{"channel":"a","rewind":"10"}`, `{"channel":"a","rewind":{"seconds":30}}`,
		`{"channel":"a","delta":true}`, `{"channel":"a","delta":{"enabled":true,"algorithm":"xdelta3"}}`,
		`{"channel":"a","filter":{"expression":"data.x > ` + "`1`" + `"}}`, `{"channel":"a","tags_filter":{"key":"k","cmp":"eq","val":"v"}}`,
		`{"channel":"a","modes":["SUBSCRIBE","ANNOTATION_SUBSCRIBE"]}`, `{"channel":1}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseSubscribeV2(json.RawMessage(b))
		if err != nil {
			if err.Code == 0 || err.Message == "" {
				t.Fatalf("%q: error without code or message: %+v", b, err)
			}
			return
		}
		if r.Channel == "" {
			t.Fatalf("%q accepted without a channel", b)
		}
		if r.Rewind != nil && (r.Rewind.Count < 0 || r.Rewind.Seconds < 0 || (r.Rewind.Count == 0) == (r.Rewind.Seconds == 0)) {
			t.Fatalf("%q: rewind %+v", b, *r.Rewind)
		}
		r2, _ := ParseSubscribeV2(json.RawMessage(b))
		if r2.Channel != r.Channel || r2.Auth != r.Auth || r2.Delta != r.Delta || r2.DeltaSet != r.DeltaSet || r2.Annotations != r.Annotations {
			t.Fatalf("%q parsed twice differently", b)
		}
	})
}

// FuzzParseDeltaSetting: no input panics; an accepted setting is fossil, xdelta3 or off.
func FuzzParseDeltaSetting(f *testing.F) {
	for _, s := range []string{`true`, `false`, `"fossil"`, `"vcdiff"`, `"none"`, `{"enabled":false}`, `{"algorithm":"xdelta3"}`, `{`, `7`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		alg, set, err := ParseDeltaSetting(json.RawMessage(b))
		if err != nil {
			return
		}
		if alg != "" && alg != DeltaAlgFossil && alg != DeltaAlgXdelta3 {
			t.Fatalf("%q: algorithm %q", b, alg)
		}
		if !set && alg != "" {
			t.Fatalf("%q: algorithm %q without a setting", b, alg)
		}
	})
}

// FuzzParseHistoryFrame: no channel_history data panics; an accepted request names a
// channel and a limit within 0..1000.
func FuzzParseHistoryFrame(f *testing.F) {
	for _, s := range []string{`{"channel":"a","limit":10}`, `{"params":{"limit":5,"direction":"oldest_first","cursor":"x"}}`,
		`{"start_serial":1,"end_serial":9,"start_time_ms":1,"end_time_ms":2,"until_attach":true}`, `"{}"`, `{"limit":0}`, `{"direction":"sideways"}`, `[]`} {
		f.Add([]byte(s), "frame-channel")
	}
	f.Fuzz(func(t *testing.T, b []byte, frameChannel string) {
		r, name, err := ParseHistoryFrame(json.RawMessage(b), frameChannel)
		if err != nil {
			return
		}
		if name == "" {
			t.Fatalf("%q: accepted without a channel", b)
		}
		if r.Limit < 0 || r.Limit > 1000 {
			t.Fatalf("%q: limit %d", b, r.Limit)
		}
	})
}

// FuzzParseChannelData: no presence channel_data panics; an accepted one has a user id of
// 1..256 bytes and user_info that is JSON within the size limit.
func FuzzParseChannelData(f *testing.F) {
	for _, s := range []string{`{"user_id":"u"}`, `{"user_id":42,"user_info":{"name":"x"}}`, `{"user_id":""}`, `{"user_info":null}`, `[]`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, info, err := ParseChannelData(s, 2)
		if err != nil {
			return
		}
		if id == "" || len(id) > 256 {
			t.Fatalf("%q: user id %q", s, id)
		}
		if len(info) > 2*1024 || !json.Valid(info) {
			t.Fatalf("%q: user_info %q", s, info)
		}
	})
}
