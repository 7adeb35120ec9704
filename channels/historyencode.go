package channels

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/pushwire/pushwire/protocol"
)

// appendHistoryJSON appends r as JSON: the same members, in the same order, as
// json.Marshal(r), but each item's message (compact JSON of our own encoder) is copied in as
// it is instead of being re-validated and compacted by encoding/json, and the items are
// written straight into dst. A 100-message page was encoded, copied and compacted again at
// about 6× its size in garbage per request; under a flood of channel_history requests
// that work and the collections it caused delayed every other channel's deliveries.
func appendHistoryJSON(dst []byte, r *HistoryResult) ([]byte, error) {
	rest := *r
	rest.Items = []HistoryItem{}
	tail, err := json.Marshal(&rest) // {"items":[],"direction":…}: everything but the items
	if err != nil {
		return dst, err
	}
	const emptyItems = `{"items":[]`
	dst = append(dst, `{"items":[`...)
	for i := range r.Items {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendHistoryItem(dst, &r.Items[i])
	}
	dst = append(dst, ']')
	return append(dst, tail[len(emptyItems):]...), nil
}

// appendHistoryFrame appends the sockudo:channel_history frame of r on channel: the bytes
// of protocol.ChannelHistory with r's JSON as data, the page written straight into it.
func appendHistoryFrame(dst []byte, channel string, r *HistoryResult) ([]byte, error) {
	dst = protocol.OutFrame{Event: protocol.V2.EventName(protocol.EventChannelHistory), Channel: channel}.Append(dst)
	dst = append(dst[:len(dst)-1], `,"data":`...) // data goes last, before the closing brace
	dst, err := appendHistoryJSON(dst, r)
	return append(dst, '}'), err
}

// historyItemsSize is about the bytes appendHistoryJSON writes for r's items.
func historyItemsSize(r *HistoryResult) int {
	n := 512
	for i := range r.Items {
		it := &r.Items[i]
		n += 192 + len(it.StreamID) + len(it.MessageID) + len(it.EventName) + len(it.Message)
	}
	return n
}

// appendHistoryItem appends one item as json.Marshal would (but its message uncompacted).
func appendHistoryItem(dst []byte, it *HistoryItem) []byte {
	dst = append(dst, `{"stream_id":`...)
	dst = appendMarshalString(dst, it.StreamID)
	dst = append(dst, `,"serial":`...)
	dst = strconv.AppendUint(dst, it.Serial, 10)
	dst = append(dst, `,"published_at_ms":`...)
	dst = strconv.AppendInt(dst, it.PublishedAtMs, 10)
	dst = append(dst, `,"message_id":`...)
	dst = appendMarshalString(dst, it.MessageID)
	dst = append(dst, `,"event_name":`...)
	dst = appendMarshalString(dst, it.EventName)
	dst = append(dst, `,"operation_kind":`...)
	dst = appendMarshalString(dst, it.OperationKind)
	dst = append(dst, `,"payload_size_bytes":`...)
	dst = strconv.AppendInt(dst, int64(it.PayloadSizeBytes), 10)
	dst = append(dst, `,"message":`...)
	if len(it.Message) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, it.Message...)
	}
	return append(dst, '}')
}

// appendMarshalString appends s as json.Marshal encodes a string: protocol's encoder, but
// encoding/json's own for the rare string holding what it escapes and protocol's does not
// (<, >, &, U+2028, U+2029), so the bytes stay those of json.Marshal.
func appendMarshalString(dst []byte, s string) []byte {
	if strings.ContainsAny(s, "<>&\u2028\u2029") {
		b, _ := json.Marshal(s)
		return append(dst, b...)
	}
	return protocol.AppendJSONString(dst, s)
}
