package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

// eventBody is the body of POST /events and one item of a batch.
type eventBody struct {
	Name string `json:"name"`
	// Data is a string, or any other JSON value, which is sent on as its compact JSON text.
	Data     json.RawMessage `json:"data"`
	Channel  string          `json:"channel"`
	Channels []string        `json:"channels"`
	SocketID string          `json:"socket_id"`
	Info     string          `json:"info"`
}

// prepared is a validated publish and the info attributes its answer must carry.
type prepared struct {
	ev   channels.Event
	info map[string]bool
}

// prepare validates one event against the app's limits. hasChannels tells whether the body
// had a "channels" member, which wins over "channel" even when empty (then a 400).
func prepare(app config.App, b eventBody, hasChannels bool) (prepared, *apiError) {
	chs := b.Channels
	if !hasChannels {
		if b.Channel == "" {
			return prepared{}, &apiError{http.StatusBadRequest, codeMissingChannel, "Either channel or channels is required"}
		}
		chs = []string{b.Channel}
	}
	if len(chs) == 0 {
		return prepared{}, &apiError{http.StatusBadRequest, codeMissingChannel, "channels must not be empty"}
	}
	if len(chs) > app.MaxEventChannelsAtOnce {
		return prepared{}, limitExceeded("Too many channels: %d, the limit is %d", len(chs), app.MaxEventChannelsAtOnce)
	}
	if len(b.Name) > app.MaxEventNameLength {
		return prepared{}, limitExceeded("Event name is %d bytes, the limit is %d", len(b.Name), app.MaxEventNameLength)
	}
	if err := protocol.ValidateEventName(b.Name, app.MaxEventNameLength); err != nil {
		return prepared{}, badRequest("%s", err.Message)
	}
	for _, ch := range chs {
		if err := protocol.ValidateChannelName(ch, app.MaxChannelNameLength); err != nil {
			return prepared{}, channelError(ch, err)
		}
	}
	data, aerr := eventData(b.Data)
	if aerr != nil {
		return prepared{}, aerr
	}
	if limit := app.MaxEventPayloadKB * 1024; len(data) > limit {
		return prepared{}, tooLarge("Event data is %d bytes, the limit is %d KB", len(data), app.MaxEventPayloadKB)
	}
	ev := channels.Event{Name: b.Name, Channels: chs, Data: data, ExceptSocketID: b.SocketID}
	return prepared{ev: ev, info: splitInfo(b.Info)}, nil
}

// eventData returns the data member as the string to deliver: a JSON string's content, or
// the compact JSON text of any other value ("null" when absent).
func eventData(raw json.RawMessage) (string, *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "null", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", badRequest("Invalid JSON body: field \"data\": %v", err)
		}
		return s, nil
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return "", badRequest("Invalid JSON body: field \"data\": %v", err)
	}
	return compact.String(), nil
}

// hasChannels reports whether the raw event object has a non-null "channels" member.
func hasChannels(raw []byte) bool {
	var probe struct {
		Channels json.RawMessage `json:"channels"`
	}
	if json.Unmarshal(raw, &probe) != nil {
		return false
	}
	return len(probe.Channels) > 0 && string(probe.Channels) != "null"
}

// decodeEvent decodes and validates one event object.
func decodeEvent(app config.App, raw []byte) (prepared, *apiError) {
	var b eventBody
	if err := decodeJSON(raw, &b); err != nil {
		return prepared{}, err
	}
	return prepare(app, b, hasChannels(raw))
}

// postEvents answers POST /apps/{appID}/events: {} or, with info, the counts per channel.
func (a *api) postEvents(w http.ResponseWriter, r *http.Request) {
	s := signedOf(r)
	p, aerr := decodeEvent(s.app, s.body)
	if aerr != nil {
		fail(w, aerr)
		return
	}
	if !a.allowEvents(w, s.app, 1) {
		return
	}
	if err := a.hub.Publish(s.app.ID, p.ev); err != nil {
		fail(w, a.publishError(s.app.ID, err))
		return
	}
	if len(p.info) == 0 {
		writeJSON(w, http.StatusOK, struct{}{})
		return
	}
	out := make(map[string]channelCounts, len(p.ev.Channels))
	for _, ch := range p.ev.Channels {
		out[ch] = a.counts(s.app.ID, ch, p.info)
	}
	writeJSON(w, http.StatusOK, map[string]any{"channels": out})
}

// channelCounts is the info of one channel in publish answers and channel listings.
type channelCounts struct {
	SubscriptionCount *int `json:"subscription_count,omitempty"`
	UserCount         *int `json:"user_count,omitempty"`
}

// counts returns the requested counts of one channel as they are now; user_count only for
// presence channels.
func (a *api) counts(appID, ch string, info map[string]bool) channelCounts {
	ci, _ := a.hub.Channel(appID, ch)
	var c channelCounts
	if info["subscription_count"] {
		c.SubscriptionCount = &ci.SubscriptionCount
	}
	if info["user_count"] && protocol.Classify(ch).Type == protocol.Presence {
		c.UserCount = &ci.UserCount
	}
	return c
}

// publishError maps an error of Hub.Publish: a *protocol.Error is a validation error (400),
// anything else is logged and a 500.
func (a *api) publishError(appID string, err error) *apiError {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return badRequest("%s", pe.Message)
	}
	a.log.Error("publish failed", zap.String("app_id", appID), zap.Error(err))
	return errInternal
}

// postBatch answers POST /apps/{appID}/batch_events. Every item is validated before any is
// published, so a bad item publishes nothing. The answer is {} or, when an item asked for
// info, {"batch":[...]} with the counts of each item's (first) channel, in order.
func (a *api) postBatch(w http.ResponseWriter, r *http.Request) {
	s := signedOf(r)
	var b struct {
		Batch []json.RawMessage `json:"batch"`
	}
	if err := decodeJSON(s.body, &b); err != nil {
		fail(w, err)
		return
	}
	if len(b.Batch) == 0 {
		fail(w, badRequest("batch must be a non-empty array of events"))
		return
	}
	if len(b.Batch) > s.app.MaxEventBatchSize {
		fail(w, limitExceeded("Batch has %d events, the limit is %d", len(b.Batch), s.app.MaxEventBatchSize))
		return
	}
	items := make([]prepared, len(b.Batch))
	wantInfo := false
	for i, raw := range b.Batch {
		p, err := decodeEvent(s.app, raw)
		if err != nil {
			fail(w, err.prefixed(fmt.Sprintf("batch[%d]: ", i)))
			return
		}
		items[i] = p
		wantInfo = wantInfo || len(p.info) > 0
	}
	if !a.allowEvents(w, s.app, len(items)) {
		return
	}
	for _, p := range items {
		if err := a.hub.Publish(s.app.ID, p.ev); err != nil {
			fail(w, a.publishError(s.app.ID, err))
			return
		}
	}
	if !wantInfo {
		writeJSON(w, http.StatusOK, struct{}{})
		return
	}
	out := make([]channelCounts, len(items))
	for i, p := range items {
		out[i] = a.counts(s.app.ID, p.ev.Channels[0], p.info)
	}
	writeJSON(w, http.StatusOK, map[string]any{"batch": out})
}
