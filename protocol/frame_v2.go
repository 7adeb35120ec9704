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
