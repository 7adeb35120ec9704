package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

// eventBody is the body of POST /events and one item of a batch.
type eventBody struct {
	Name     string          `json:"name"`
	Data     json.RawMessage `json:"data"`
	Channel  string          `json:"channel"`
	Channels []string        `json:"channels"`
	SocketID string          `json:"socket_id"`
	Info     string          `json:"info"`
}

// prepared is a validated publish.
type prepared struct {
	ev   channels.Event
	info map[string]bool
}

// prepare validates one event against the app's limits.
func prepare(app config.App, b eventBody, channelsGiven bool) (prepared, *apiError) {
	chs := b.Channels
	if !channelsGiven {
		if b.Channel == "" {
			return prepared{}, &apiError{http.StatusBadRequest, "missing_channel_info", "Either channel or channels is required"}
		}
		chs = []string{b.Channel}
	}
	if len(chs) == 0 {
		return prepared{}, &apiError{http.StatusBadRequest, "missing_channel_info", "channels must not be empty"}
	}
	if len(chs) > app.MaxEventChannelsAtOnce {
		return prepared{}, &apiError{http.StatusBadRequest, "limit_exceeded", fmt.Sprintf("Too many channels: %d, the limit is %d", len(chs), app.MaxEventChannelsAtOnce)}
	}
	if err := protocol.ValidateEventName(b.Name, app.MaxEventNameLength); err != nil {
		return prepared{}, badRequest("%s", err.Message)
	}
	for _, ch := range chs {
		if err := protocol.ValidateChannelName(ch, app.MaxChannelNameLength); err != nil {
			return prepared{}, badRequest("%s", err.Message)
		}
	}
	data := "null"
	if raw := bytes.TrimSpace(b.Data); len(raw) > 0 {
		if s, ok := protocol.StringOrRaw(raw); ok && raw[0] == '"' {
			data = s
		} else {
			var compact bytes.Buffer
			if err := json.Compact(&compact, raw); err == nil {
				data = compact.String()
			}
		}
	}
	if limit := app.MaxEventPayloadKB * 1024; len(data) > limit {
		return prepared{}, &apiError{http.StatusRequestEntityTooLarge, "payload_too_large", fmt.Sprintf("Event data is %d bytes, the limit is %d KB", len(data), app.MaxEventPayloadKB)}
	}
	info := splitInfo(b.Info)
	return prepared{ev: channels.Event{Name: b.Name, Channels: chs, Data: data, ExceptSocketID: b.SocketID}, info: info}, nil
}

// channelsGiven reports whether the raw item has a "channels" member.
func channelsGiven(raw json.RawMessage) bool {
	var probe struct {
		Channels json.RawMessage `json:"channels"`
	}
	_ = json.Unmarshal(raw, &probe)
	return len(probe.Channels) > 0 && string(probe.Channels) != "null"
}

func (a *api) postEvents(w http.ResponseWriter, r *http.Request) {
	app, body := appOf(r), bodyOf(r)
	var b eventBody
	if err := decodeJSON(body, &b); err != nil {
		fail(w, err)
		return
	}
	p, aerr := prepare(app, b, channelsGiven(body))
	if aerr != nil {
		fail(w, aerr)
		return
	}
	if !a.allowEvents(w, app, 1) {
		return
	}
	if err := a.hub.Publish(app.ID, p.ev); err != nil {
		fail(w, protocolError(err))
		return
	}
	if len(p.info) == 0 {
		writeJSON(w, http.StatusOK, struct{}{})
		return
	}
	out := map[string]map[string]int{}
	for _, ch := range p.ev.Channels {
		out[ch] = a.channelInfo(app.ID, ch, p.info)
	}
	writeJSON(w, http.StatusOK, map[string]any{"channels": out})
}

// channelInfo returns the requested counts of one channel; user_count only on presence.
func (a *api) channelInfo(appID, ch string, info map[string]bool) map[string]int {
	ci, _ := a.hub.Channel(appID, ch)
	m := map[string]int{}
	if info["subscription_count"] {
		m["subscription_count"] = ci.SubscriptionCount
	}
	if info["user_count"] && protocol.Classify(ch).Type == protocol.Presence {
		m["user_count"] = ci.UserCount
	}
	return m
}

func (a *api) postBatch(w http.ResponseWriter, r *http.Request) {
	app, body := appOf(r), bodyOf(r)
	var b struct {
		Batch []json.RawMessage `json:"batch"`
	}
	if err := decodeJSON(body, &b); err != nil {
		fail(w, err)
		return
	}
	if len(b.Batch) == 0 {
		fail(w, badRequest("batch must be a non-empty array of events"))
		return
	}
	if len(b.Batch) > app.MaxEventBatchSize {
		fail(w, &apiError{http.StatusBadRequest, "limit_exceeded", fmt.Sprintf("Batch has %d events, the limit is %d", len(b.Batch), app.MaxEventBatchSize)})
		return
	}
	// Validate every item before publishing any, so a bad item publishes nothing.
	items := make([]prepared, len(b.Batch))
	wantInfo := false
	for i, raw := range b.Batch {
		var eb eventBody
		if err := decodeJSON(raw, &eb); err != nil {
			err.msg = fmt.Sprintf("batch[%d]: %s", i, err.msg)
			fail(w, err)
			return
		}
		p, err := prepare(app, eb, channelsGiven(raw))
		if err != nil {
			err.msg = fmt.Sprintf("batch[%d]: %s", i, err.msg)
			fail(w, err)
			return
		}
		items[i] = p
		wantInfo = wantInfo || len(p.info) > 0
	}
	if !a.allowEvents(w, app, len(items)) {
		return
	}
	for _, p := range items {
		if err := a.hub.Publish(app.ID, p.ev); err != nil {
			fail(w, protocolError(err))
			return
		}
	}
	if !wantInfo {
		writeJSON(w, http.StatusOK, struct{}{})
		return
	}
	out := make([]map[string]int, len(items))
	for i, p := range items {
		out[i] = a.channelInfo(app.ID, p.ev.Channels[0], p.info)
	}
	writeJSON(w, http.StatusOK, map[string]any{"batch": out})
}
