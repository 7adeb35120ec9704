package protocol

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// SubscribeRequest is the data of a pusher:subscribe frame.
type SubscribeRequest struct {
	Channel     string
	Auth        string
	ChannelData string
	// Filter (V2) limits what the subscription receives; nil receives everything.
	Filter *Filter
	// Rewind (V2) asks for recent history after the acknowledgement.
	Rewind *Rewind
	// Delta (V2) is the subscription's delta setting when DeltaSet: an algorithm, or "" for
	// off. Without it the connection-wide setting applies.
	Delta    string
	DeltaSet bool
	// Annotations (V2): modes include ANNOTATION_SUBSCRIBE, raw annotation events wanted.
	Annotations bool
}

// ParseSubscribe reads the data of a subscribe frame (an object or a JSON string holding one).
func ParseSubscribe(data json.RawMessage) (SubscribeRequest, *Error) {
	var w struct {
		Channel     json.RawMessage `json:"channel"`
		Auth        json.RawMessage `json:"auth"`
		ChannelData json.RawMessage `json:"channel_data"`
	}
	if err := DecodeData(data, &w); err != nil {
		return SubscribeRequest{}, Errorf(CodeGeneric, "Invalid subscribe data: %v", err)
	}
	var r SubscribeRequest
	if json.Unmarshal(w.Channel, &r.Channel) != nil || r.Channel == "" {
		return r, &Error{Code: CodeGeneric, Message: "Invalid subscribe data: channel must be a non-empty string"}
	}
	if len(w.Auth) > 0 && string(w.Auth) != "null" && json.Unmarshal(w.Auth, &r.Auth) != nil {
		return r, &Error{Code: CodeGeneric, Message: "Invalid subscribe data: auth must be a string"}
	}
	r.ChannelData, _ = StringOrRaw(w.ChannelData)
	return r, nil
}

// ParseSubscribeV2 is ParseSubscribe for a V2 connection: it also reads the subscription
// filter (tags_filter / filter) and refuses a malformed one.
func ParseSubscribeV2(data json.RawMessage) (SubscribeRequest, *Error) {
	r, err := ParseSubscribe(data)
	if err != nil {
		return r, err
	}
	var w struct {
		TagsFilter json.RawMessage `json:"tags_filter"`
		Filter     json.RawMessage `json:"filter"`
		Rewind     json.RawMessage `json:"rewind"`
		Delta      json.RawMessage `json:"delta"`
		Modes      json.RawMessage `json:"modes"`
	}
	_ = DecodeData(data, &w) // ParseSubscribe already decoded it once
	var merr *Error
	if r.Annotations, merr = parseModes(w.Modes); merr != nil {
		return r, merr
	}
	f, ferr := ParseFilter(w.TagsFilter, w.Filter)
	if ferr != nil {
		return r, ferr
	}
	if r.Rewind, ferr = parseRewind(w.Rewind); ferr != nil {
		return r, ferr
	}
	if r.Delta, r.DeltaSet, ferr = ParseDeltaSetting(w.Delta); ferr != nil {
		return r, ferr
	}
	if f != nil {
		r.Filter = f
	}
	return r, nil
}

// parseModes reads a V2 subscription's modes: SUBSCRIBE and ANNOTATION_SUBSCRIBE, as
// Sockudo names them; explicit modes replace the default (SUBSCRIBE alone). It reports
// whether raw annotations are wanted.
func parseModes(raw json.RawMessage) (bool, *Error) {
	if len(raw) == 0 || string(raw) == "null" {
		return false, nil
	}
	var modes []string
	if err := json.Unmarshal(raw, &modes); err != nil {
		return false, &Error{Code: CodeGeneric, Message: `Invalid subscribe data: modes must be an array of strings ("SUBSCRIBE", "ANNOTATION_SUBSCRIBE")`}
	}
	ann := false
	for _, m := range modes {
		switch strings.ToUpper(m) {
		case ModeSubscribe:
		case ModeAnnotationSubscribe:
			ann = true
		default:
			return false, Errorf(CodeGeneric, "Invalid subscribe data: unknown mode %q (SUBSCRIBE, ANNOTATION_SUBSCRIBE)", Truncate(m, 64))
		}
	}
	return ann, nil
}

// Rewind is a subscribe-time rewind: the last Count messages, or those of the last
// Seconds.
type Rewind struct {
	Count   int
	Seconds int
}

// parseRewind reads rewind: 10, "10", {"count":10}, {"seconds":30} or
// {"duration_seconds":30}.
func parseRewind(raw json.RawMessage) (*Rewind, *Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	bad := &Error{Code: CodeChannelError, Message: `Invalid rewind: use a positive count (10, "10", {"count":10}) or {"seconds":30}`}
	positive := func(b json.RawMessage) (int, bool) {
		var n json.Number
		if json.Unmarshal(b, &n) != nil {
			return 0, false
		}
		v, err := strconv.ParseInt(n.String(), 10, 32)
		return int(v), err == nil && v > 0
	}
	switch raw[0] {
	case '"':
		var s string
		_ = json.Unmarshal(raw, &s)
		if n, ok := positive(json.RawMessage(s)); ok {
			return &Rewind{Count: n}, nil
		}
	case '{':
		var o map[string]json.RawMessage
		if json.Unmarshal(raw, &o) != nil || len(o) != 1 {
			return nil, bad
		}
		for k, v := range o {
			n, ok := positive(v)
			if !ok {
				return nil, bad
			}
			switch k {
			case "count":
				return &Rewind{Count: n}, nil
			case "seconds", "duration_seconds":
				return &Rewind{Seconds: n}, nil
			}
		}
	default:
		if n, ok := positive(raw); ok {
			return &Rewind{Count: n}, nil
		}
	}
	return nil, bad
}

// ParseDeltaSetting reads a subscription's delta member: true/false, "fossil", "xdelta3" /
// "vcdiff", "disabled"/"false"/"none", or {"enabled":bool,"algorithm":"…"}. set reports
// whether the member was given; algorithm "" means disabled.
func ParseDeltaSetting(raw json.RawMessage) (algorithm string, set bool, err *Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false, nil
	}
	bad := &Error{Code: CodeGeneric, Message: `Invalid delta: use true, false, "fossil", "xdelta3" or {"enabled":true,"algorithm":"fossil"}`}
	alg := func(s string) (string, bool) {
		switch strings.ToLower(s) {
		case "", "fossil", "true":
			return DeltaAlgFossil, true
		case "xdelta3", "vcdiff":
			return DeltaAlgXdelta3, true
		case "disabled", "false", "none":
			return "", true
		}
		return "", false
	}
	switch raw[0] {
	case 't':
		return DeltaAlgFossil, true, nil
	case 'f':
		return "", true, nil
	case '"':
		var s string
		_ = json.Unmarshal(raw, &s)
		a, ok := alg(s)
		if !ok {
			return "", false, bad
		}
		return a, true, nil
	case '{':
		var o struct {
			Enabled   *bool  `json:"enabled"`
			Algorithm string `json:"algorithm"`
		}
		if json.Unmarshal(raw, &o) != nil {
			return "", false, bad
		}
		if o.Enabled != nil && !*o.Enabled {
			return "", true, nil
		}
		a, ok := alg(o.Algorithm)
		if !ok || a == "" {
			return "", false, bad
		}
		return a, true, nil
	}
	return "", false, bad
}

// ParseChannelData reads presence channel_data: user_id (string, or a number kept as its
// JSON text) and optional user_info, at most maxKB kilobytes.
func ParseChannelData(s string, maxKB int) (string, json.RawMessage, *Error) {
	var d struct {
		UserID   json.RawMessage `json:"user_id"`
		UserInfo json.RawMessage `json:"user_info"`
	}
	if s == "" {
		return "", nil, &Error{Code: CodeUnauthorized, Message: "Authentication error: presence channels require channel_data"}
	}
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return "", nil, &Error{Code: CodeGeneric, Message: "Invalid channel_data: not a JSON object"}
	}
	var id string
	raw := bytes.TrimSpace(d.UserID)
	switch {
	case len(raw) > 0 && raw[0] == '"':
		_ = json.Unmarshal(raw, &id)
	case len(raw) > 0 && (raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')):
		id = string(raw)
	}
	if id == "" {
		return "", nil, &Error{Code: CodeGeneric, Message: "Invalid channel_data: user_id must be a non-empty string"}
	}
	info := bytes.TrimSpace(d.UserInfo)
	if len(info) == 0 || string(info) == "null" {
		info = []byte("{}")
	}
	if len(info) > maxKB*1024 {
		return "", nil, Errorf(CodeChannelError, "Presence user_info is larger than %d KB", maxKB)
	}
	if len(id) > 256 {
		return "", nil, &Error{Code: CodeChannelError, Message: "Presence user_id is longer than 256 bytes"}
	}
	return id, json.RawMessage(info), nil
}
