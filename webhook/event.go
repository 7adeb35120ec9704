package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
)

// Encoding builds each event object once, as compact JSON without HTML escaping (so data
// such as "<b>" arrives as written), with Pusher's field names and order.

// encodeChannel encodes {"name","channel"}: channel_occupied, channel_vacated, cache_miss.
func encodeChannel(typ, channel string) []byte {
	return encode(struct {
		Name    string `json:"name"`
		Channel string `json:"channel"`
	}{typ, channel})
}

// encodeMember encodes {"name","channel","user_id"}: member_added, member_removed.
func encodeMember(typ, channel, userID string) []byte {
	return encode(struct {
		Name    string `json:"name"`
		Channel string `json:"channel"`
		UserID  string `json:"user_id"`
	}{typ, channel, userID})
}

// encodeCount encodes subscription_count.
func encodeCount(channel string, count int) []byte {
	return encode(struct {
		Name              string `json:"name"`
		Channel           string `json:"channel"`
		SubscriptionCount int    `json:"subscription_count"`
	}{typeSubscriptionCount, channel, count})
}

// encodeClientEvent encodes client_event. data is the event's data as the client sent it;
// it goes out as a JSON string (Pusher's documented shape): a string stays that string,
// any other value becomes its JSON text. user_id is present on presence channels only.
func encodeClientEvent(channel, event string, data json.RawMessage, socketID, userID string) []byte {
	return encode(struct {
		Name     string          `json:"name"`
		Channel  string          `json:"channel"`
		Event    string          `json:"event"`
		Data     json.RawMessage `json:"data"`
		SocketID string          `json:"socket_id"`
		UserID   string          `json:"user_id,omitempty"`
	}{typeClientEvent, channel, event, dataString(data), socketID, userID})
}

// dataString returns data as a JSON string literal: unchanged when it already is one,
// otherwise the JSON string holding its (trimmed) text. Missing data is "".
func dataString(data json.RawMessage) json.RawMessage {
	t := bytes.TrimSpace(data)
	if len(t) > 0 && t[0] == '"' && json.Valid(t) {
		return t
	}
	return encode(string(t))
}

// encode marshals v compactly without HTML escaping. v is always one of the structs above,
// which cannot fail to encode.
func encode(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("webhook: encoding an event: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
}

// body builds {"time_ms":<ms>,"events":[...]} from encoded events.
func body(timeMS int64, events [][]byte) []byte {
	n := 32
	for _, e := range events {
		n += len(e) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"time_ms":`...)
	b = strconv.AppendInt(b, timeMS, 10)
	b = append(b, `,"events":[`...)
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e...)
	}
	return append(b, "]}"...)
}

// Sign returns the X-Pusher-Signature of a webhook body: the lowercase hex HMAC-SHA256 of
// the exact body bytes keyed with the app secret.
func Sign(secret string, body []byte) string {
	return sign([]byte(secret), body)
}

func sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify reports, in constant time, whether signature is the X-Pusher-Signature of body
// for this secret — what a receiver checks.
func Verify(secret string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(signature))
}
