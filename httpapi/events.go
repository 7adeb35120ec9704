package httpapi

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
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
	// V2: top-level string tags, the extras envelope and the idempotency key.
	Tags           json.RawMessage `json:"tags"`
	Extras         json.RawMessage `json:"extras"`
	IdempotencyKey *string         `json:"idempotency_key"`
	// Delta false sends the message in full to delta subscribers.
	Delta *bool `json:"delta"`
	// MessageID (V2) is the publisher's message id: the delivered message's id and an
	// idempotent create key per channel (messageid.go).
	MessageID *string `json:"message_id"`
}

// prepared is a validated publish and the info attributes its answer must carry.
type prepared struct {
	ev   channels.Event
	info map[string]bool
	// key is the publish's idempotency key ("" when none).
	key string
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
	key := ""
	if b.IdempotencyKey != nil {
		if key = *b.IdempotencyKey; key == "" {
			return prepared{}, badRequest("idempotency_key must not be empty")
		}
	}
	v2, aerr := parseV2Fields(b.Tags, b.Extras, &key)
	if aerr != nil {
		return prepared{}, aerr
	}
	ev := channels.Event{Name: b.Name, Channels: chs, Data: data, ExceptSocketID: b.SocketID,
		Tags: v2.tags, Extras: v2.extras, Ephemeral: v2.ephemeral, NoDelta: b.Delta != nil && !*b.Delta}
	if b.MessageID != nil {
		if err := protocol.ValidateMessageID(*b.MessageID); err != nil {
			return prepared{}, badRequest("%v", err)
		}
		ev.MessageID = *b.MessageID
	}
	return prepared{ev: ev, info: splitInfo(b.Info), key: v2.idemKey}, nil
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
// With an idempotency key (body idempotency_key, extras.idempotencyKey or the
// X-Idempotency-Key header, bound to the signed body: headerKey) a repeat within the app's
// window delivers nothing and gets the first answer; a failed publish frees its key.
func (a *api) postEvents(w http.ResponseWriter, r *http.Request) {
	s := signedOf(r)
	p, aerr := decodeEvent(s.app, s.body)
	if aerr != nil {
		fail(w, aerr)
		return
	}
	if p.key == "" {
		if p.key, aerr = headerKey(r, s.body); aerr != nil {
			fail(w, aerr)
			return
		}
	}
	if !a.allowEvents(w, s.app, 1) {
		return
	}
	ttl := s.app.IdempotencyTTL.D()
	if p.key != "" && !a.claimKey(w, r, s.app.ID, p.key, ttl) {
		return
	}
	releaseKey := func() {
		if p.key != "" {
			a.releaseKey(context.WithoutCancel(r.Context()), s.app.ID, p.key)
		}
	}
	oc, aerr := a.claimOnce(r.Context(), s.app, &p, 0, nil)
	if aerr != nil {
		releaseKey()
		failOnce(w, aerr)
		return
	}
	replayed := oc.replayedAll()
	acks, err := a.publishOnce(r.Context(), s.app, p, oc, nil)
	if err != nil {
		a.releaseOnce(r.Context(), s.app.ID, oc)
		releaseKey()
		fail(w, a.publishError(s.app.ID, err))
		return
	}
	var answer any = struct{}{}
	if len(p.info) > 0 || versioned(acks) || p.ev.MessageID != "" {
		out := make(map[string]publishedChannel, len(p.ev.Channels))
		for _, ack := range acks {
			out[ack.Channel] = a.published(s.app.ID, ack, p)
		}
		answer = map[string]any{"channels": out}
	}
	b := encodeJSON(answer)
	if p.key != "" {
		a.completeKey(context.WithoutCancel(r.Context()), s.app.ID, p.key, b, ttl)
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeRawJSON(w, http.StatusOK, b)
}

// publishedChannel is one channel of a publish answer: the requested counts and, for a
// mutable message, its serials (http-api §3.3).
type publishedChannel struct {
	channelCounts
	AcknowledgementID string  `json:"acknowledgement_id,omitempty"`
	MessageSerial     string  `json:"message_serial,omitempty"`
	HistorySerial     *uint64 `json:"history_serial,omitempty"`
	DeliverySerial    *uint64 `json:"delivery_serial,omitempty"`
	VersionSerial     string  `json:"version_serial,omitempty"`
}

// versioned reports whether a publish created a mutable message on some channel.
func versioned(acks []channels.PublishAck) bool {
	for _, a := range acks {
		if a.MessageSerial != "" {
			return true
		}
	}
	return false
}

// published builds one channel of a publish answer: the counts p asked for, and the
// receipt of a mutable message (acknowledgement_id = message_serial) or of a message_id
// (acknowledgement_id = message_id).
func (a *api) published(appID string, ack channels.PublishAck, p prepared) publishedChannel {
	var pc publishedChannel
	if len(p.info) > 0 {
		pc.channelCounts = a.counts(appID, ack.Channel, p.info)
	}
	if p.ev.MessageID != "" {
		pc.AcknowledgementID = ack.MessageID
	}
	if ack.MessageSerial != "" {
		serial := ack.Serial
		pc.AcknowledgementID, pc.MessageSerial, pc.VersionSerial = ack.MessageSerial, ack.MessageSerial, ack.VersionSerial
		pc.HistorySerial, pc.DeliverySerial = &serial, &serial
	}
	return pc
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
	// Items with an idempotency key are claimed first: an item already published is
	// skipped, a batch with an item in flight elsewhere is refused (409) as a whole.
	ttl := s.app.IdempotencyTTL.D()
	ctx := context.WithoutCancel(r.Context())
	// claimed[i] is item i's key when this request claimed it; delivered[i] once item i is
	// published. A batch that fails at item i keeps (completes) the keys of the items already
	// delivered — a retry of those must replay, not publish twice — and frees the others.
	claimed := make([]string, len(items))
	delivered := make([]bool, len(items))
	release := func() {
		for i, k := range claimed {
			switch {
			case k == "":
			case delivered[i]:
				a.completeKey(ctx, s.app.ID, k, []byte("{}"), ttl)
			default:
				a.releaseKey(ctx, s.app.ID, k)
			}
		}
	}
	skip := make([]bool, len(items))
	for i, p := range items {
		if p.key == "" {
			continue
		}
		_, done, ok, err := a.idem.Claim(ctx, s.app.ID, p.key, ttl)
		switch {
		case err != nil:
			release()
			writeError(w, http.StatusServiceUnavailable, "service_unavailable", "Idempotency store unavailable: retry later")
			return
		case done:
			skip[i] = true
		case ok:
			claimed[i] = p.key
		default:
			release()
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusConflict, "idempotency_in_progress", fmt.Sprintf("batch[%d]: a publish with this idempotency key is in progress: retry later", i))
			return
		}
	}
	// Then the message_id of each item, per channel (messageid.go): a repeat within the batch
	// answers like the earlier item.
	onces := make([]*onceClaim, len(items))
	seen := onceSeen{}
	releaseOnces := func() {
		for i, oc := range onces {
			if !delivered[i] { // a delivered item's message_id claims were completed
				a.releaseOnce(ctx, s.app.ID, oc)
			}
		}
	}
	for i := range items {
		if skip[i] {
			continue
		}
		oc, aerr := a.claimOnce(ctx, s.app, &items[i], i, seen)
		if aerr != nil {
			releaseOnces()
			release()
			failOnce(w, aerr.prefixed(fmt.Sprintf("batch[%d]: ", i)))
			return
		}
		onces[i] = oc
		wantInfo = wantInfo || oc != nil
	}
	all := make([][]channels.PublishAck, len(items))
	acks := make([]channels.PublishAck, len(items))
	if err := r.Context().Err(); err != nil {
		// The publisher left before anything was published: nothing is.
		releaseOnces()
		release()
		return
	}
	// Items without a message_id are started one after the other and waited for together,
	// so a pipelined history store commits them in few round trips (each channel keeps the
	// batch's order); an item with one waits for those before it (its answer may repeat
	// theirs). Once started, the batch is published whole whatever the request becomes.
	type startedItem struct {
		i    int
		wait func() []channels.PublishAck
	}
	var started []startedItem
	finish := func() {
		for _, st := range started {
			got := st.wait()
			delivered[st.i] = true
			a.notifyPublished(s.app.ID, items[st.i].ev)
			all[st.i], acks[st.i] = got, got[0]
		}
		started = started[:0]
	}
	for i, p := range items {
		if skip[i] {
			continue
		}
		if onces[i] == nil {
			wait, err := a.hub.StartPublish(ctx, s.app.ID, p.ev)
			if err != nil {
				finish()
				releaseOnces()
				release()
				fail(w, a.publishError(s.app.ID, err))
				return
			}
			started = append(started, startedItem{i, wait})
			continue
		}
		finish()
		got, err := a.publishOnce(ctx, s.app, p, onces[i], all)
		if err != nil {
			releaseOnces()
			release()
			fail(w, a.publishError(s.app.ID, err))
			return
		}
		delivered[i] = true
		all[i], acks[i] = got, got[0]
	}
	finish()
	release() // every item is delivered now: this completes every claimed key
	if !wantInfo && !versioned(acks) {
		writeJSON(w, http.StatusOK, struct{}{})
		return
	}
	out := make([]publishedChannel, len(items))
	for i, p := range items {
		acks[i].Channel = p.ev.Channels[0]
		out[i] = a.published(s.app.ID, acks[i], p)
	}
	writeJSON(w, http.StatusOK, map[string]any{"batch": out})
}

// headerKey returns the publish's X-Idempotency-Key bound to the signature ("" without the
// header). The request signature covers the body (body_md5) but no header, so whoever holds a
// signed request could replay it with a key of their choosing and make a later genuine
// publish carrying that key answer "replayed" and deliver nothing. The header key is
// therefore scoped to the MD5 of the signed body: it de-duplicates retries of the same body
// (what it is for), never a different one. The body's idempotency_key (or
// extras.idempotencyKey) is signed and used as is; when present the header is ignored (the
// Sockudo SDKs send both, equal).
func headerKey(r *http.Request, body []byte) (string, *apiError) {
	h := r.Header.Get("X-Idempotency-Key")
	if h == "" {
		return "", nil
	}
	if len(h) > maxIdempotencyKeyLen {
		return "", badRequest("X-Idempotency-Key is longer than %d bytes", maxIdempotencyKeyLen)
	}
	sum := md5.Sum(body)
	return "header\x00" + hex.EncodeToString(sum[:]) + "\x00" + h, nil
}
