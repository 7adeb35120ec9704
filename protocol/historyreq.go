package protocol

import (
	"encoding/json"
	"strings"
)

// HistoryRequest is one read of a channel's history, from the WebSocket or the HTTP API.
type HistoryRequest struct {
	Direction   Direction
	Limit       int // 0 = the default (100)
	StartSerial uint64
	EndSerial   uint64
	StartMs     int64
	EndMs       int64
	Cursor      string
	// UntilAttach clamps EndSerial to the subscription's attach serial (WebSocket only).
	UntilAttach bool
}

// ParseHistoryDirection reads a direction and its aliases (case-insensitive); "" is
// newest_first.
func ParseHistoryDirection(s string) (Direction, bool) {
	switch strings.ToLower(s) {
	case "", "newest_first", "backwards", "reverse":
		return NewestFirst, true
	case "oldest_first", "forwards", "forward":
		return OldestFirst, true
	}
	return 0, false
}

// ParseHistoryFrame reads a channel_history request: fields at the top of data or under
// data.params; data may be an object or a JSON string holding one.
func ParseHistoryFrame(data json.RawMessage, frameChannel string) (HistoryRequest, string, *Error) {
	var outer map[string]json.RawMessage
	if err := DecodeData(data, &outer); err != nil {
		return HistoryRequest{}, "", Errorf(CodeGeneric, "Invalid channel_history data: %v", err)
	}
	if p, ok := outer["params"]; ok {
		var inner map[string]json.RawMessage
		if json.Unmarshal(p, &inner) == nil {
			for k, v := range inner {
				outer[k] = v
			}
		}
	}
	var w struct {
		Channel     string  `json:"channel"`
		Limit       *int    `json:"limit"`
		Direction   string  `json:"direction"`
		Cursor      *string `json:"cursor"`
		StartSerial *uint64 `json:"start_serial"`
		EndSerial   *uint64 `json:"end_serial"`
		Start       *uint64 `json:"start"`
		End         *uint64 `json:"end"`
		StartMs     *int64  `json:"start_time_ms"`
		EndMs       *int64  `json:"end_time_ms"`
		UntilAttach *bool   `json:"until_attach"`
		UntilAttac2 *bool   `json:"untilAttach"`
	}
	b, _ := json.Marshal(outer)
	if err := json.Unmarshal(b, &w); err != nil {
		return HistoryRequest{}, "", Errorf(CodeGeneric, "Invalid channel_history data: %v", err)
	}
	name := w.Channel
	if name == "" {
		name = frameChannel
	}
	if name == "" {
		return HistoryRequest{}, "", &Error{Code: CodeGeneric, Message: "Invalid channel_history data: channel is required"}
	}
	dir, ok := ParseHistoryDirection(w.Direction)
	if !ok {
		return HistoryRequest{}, "", Errorf(CodeGeneric, "Invalid channel_history data: direction %q is not newest_first or oldest_first", Truncate(w.Direction, 32))
	}
	r := HistoryRequest{Direction: dir}
	if w.Limit != nil {
		if *w.Limit <= 0 {
			return r, "", &Error{Code: CodeGeneric, Message: "Invalid channel_history data: limit must be positive"}
		}
		r.Limit = min(*w.Limit, 1000)
	}
	if w.Cursor != nil {
		r.Cursor = *w.Cursor
	}
	for _, p := range []struct {
		dst *uint64
		src []*uint64
	}{{&r.StartSerial, []*uint64{w.StartSerial, w.Start}}, {&r.EndSerial, []*uint64{w.EndSerial, w.End}}} {
		for _, s := range p.src {
			if s != nil {
				*p.dst = *s
			}
		}
	}
	if w.StartMs != nil {
		r.StartMs = *w.StartMs
	}
	if w.EndMs != nil {
		r.EndMs = *w.EndMs
	}
	r.UntilAttach = (w.UntilAttach != nil && *w.UntilAttach) || (w.UntilAttac2 != nil && *w.UntilAttac2)
	return r, name, nil
}
