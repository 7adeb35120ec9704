package protocol

import (
	"encoding/json"
	"strconv"
)

// TokenExpired tells a V2 client its capability token expired (code 40142, reason
// "expired") or was revoked (40160, "revoked"): data is an object {"code","reason"}.
func TokenExpired(v Version, code int, reason string) []byte {
	d := append([]byte(`{"code":`), strconv.Itoa(code)...)
	d = append(d, `,"reason":`...)
	d = AppendJSONString(d, reason)
	d = append(d, '}')
	return OutFrame{Event: v.EventName(EventTokenExpired), Data: d}.Bytes()
}

// AuthSuccess confirms a sockudo:auth token refresh: data {"client_id","jti","exp"}.
func AuthSuccess(v Version, clientID, jti string, exp int64) []byte {
	d := append([]byte(`{"client_id":`), Str(clientID)...)
	d = append(d, `,"jti":`...)
	d = AppendJSONString(d, jti)
	d = append(d, `,"exp":`...)
	d = strconv.AppendInt(d, exp, 10)
	d = append(d, '}')
	return OutFrame{Event: v.EventName(EventAuthSuccess), Data: d}.Bytes()
}

// PresenceUpdate announces a member's new user_info (V2): data is the double-encoded
// "{\"user_id\":\"..\",\"user_info\":..}".
func PresenceUpdate(v Version, channel, userID string, userInfo json.RawMessage) []byte {
	inner := append([]byte(`{"user_id":`), Str(userID)...)
	inner = append(inner, `,"user_info":`...)
	inner = append(inner, userInfo...)
	inner = append(inner, '}')
	return OutFrame{Event: v.EventName(EventPresenceUpdate), Channel: channel, Data: Str(string(inner))}.Bytes()
}

// SubscriptionSucceededV2 is the V2 ack of a channel that keeps history: data (double-encoded)
// carries attach_serial, and the frame carries the channel's position (stream_id, serial) so
// an idle channel has a resume position too. An empty streamID omits the position.
func SubscriptionSucceededV2(channel string, data []byte, streamID string, serial uint64) []byte {
	m := Message{Event: V2.EventName(EventSubscriptionSucceeded), Channel: channel, Data: Str(string(data)), StreamID: streamID}
	if streamID != "" {
		m.Serial = serial
	}
	b := m.AppendV2(make([]byte, 0, m.Size()))
	if streamID != "" && serial == 0 {
		// serial 0 (an empty stream) is still a position: AppendV2 omits zero serials.
		b = append(b[:len(b)-1], `,"serial":0}`...)
	}
	return b
}

// RewindComplete ends a subscribe-time rewind: data is an object with the counts and flags.
func RewindComplete(v Version, channel string, historical, live int, complete, byRetention, byLimit bool) []byte {
	d := append([]byte(`{"historical_count":`), strconv.Itoa(historical)...)
	d = append(d, `,"live_count":`...)
	d = strconv.AppendInt(d, int64(live), 10)
	d = append(d, `,"complete":`...)
	d = strconv.AppendBool(d, complete)
	d = append(d, `,"truncated_by_retention":`...)
	d = strconv.AppendBool(d, byRetention)
	d = append(d, `,"truncated_by_limit":`...)
	d = strconv.AppendBool(d, byLimit)
	d = append(d, '}')
	return OutFrame{Event: v.EventName(EventRewindComplete), Channel: channel, Data: d}.Bytes()
}

// ResumeFailed reports one channel a resume could not recover; data is double-encoded JSON.
func ResumeFailed(v Version, channel string, data []byte) []byte {
	return OutFrame{Event: v.EventName(EventResumeFailed), Channel: channel, Data: Str(string(data))}.Bytes()
}

// ResumeSuccess ends a resume with the recovered and failed channels; data is double-encoded.
func ResumeSuccess(v Version, data []byte) []byte {
	// OutFrame{Event, Data: Str(data)}, written into one buffer: a resume of many channels
	// answers with a large data object.
	ev := v.EventName(EventResumeSuccess)
	dst := make([]byte, 0, 24+len(ev)+len(data)+len(data)/4)
	dst = append(dst, `{"event":`...)
	dst = AppendJSONString(dst, ev)
	dst = append(dst, `,"data":`...)
	dst = AppendJSONString(dst, string(data))
	return append(dst, '}')
}

// ChannelHistory answers sockudo:channel_history; data is the page object.
func ChannelHistory(v Version, channel string, data []byte) []byte {
	return OutFrame{Event: v.EventName(EventChannelHistory), Channel: channel, Data: data}.Bytes()
}

// DeltaEnabled confirms delta compression: connection-wide (channel "") as
// {"enabled":true,"algorithm":…}, or for one subscription with the channel in the frame and
// in data.
func DeltaEnabled(channel, algorithm string) []byte {
	d := append([]byte(`{"enabled":true,"algorithm":`), Str(algorithm)...)
	if channel != "" {
		d = append(d, `,"channel":`...)
		d = AppendJSONString(d, channel)
	}
	d = append(d, '}')
	return OutFrame{Event: V2.EventName("pusher:delta_compression_enabled"), Channel: channel, Data: d}.Bytes()
}
