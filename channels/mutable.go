package channels

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/protocol"
)

// Mutable messages (ws-protocol §5, http-api §3.3). An HTTP publish to a channel with
// versioned messages on (App.VersionedFor) is a create: it gets a message serial and is
// stored through Versions.Create. Update, delete and append come through Hub.Mutate; each
// is one more delivery in the channel's stream (a new serial), sent to V2 subscribers as
// sockudo:message.<action> and never to V1. History listings and rewind show each
// message's latest aggregate; resume replays every delivery in serial order.

// serialNode is this process's part of the serials it mints; serialCounter their counter.
var (
	serialNode    = protocol.NewUUID()[:8]
	serialCounter atomic.Uint64
)

// MutationRequest is one update, delete or append of a message, from the HTTP API.
type MutationRequest struct {
	Channel       string
	MessageSerial string
	Op            protocol.Mutation
	// SocketID, when set, binds the operation to that V2 connection (its identity and
	// capability token); without it the signed request is a privileged server operation.
	SocketID string
}

// MutationResult is the answer to a mutation (http-api §3.3).
type MutationResult struct {
	Channel        string          `json:"channel"`
	MessageSerial  string          `json:"message_serial"`
	Action         protocol.Action `json:"action"`
	Accepted       bool            `json:"accepted"`
	VersionSerial  string          `json:"version_serial"`
	HistorySerial  uint64          `json:"history_serial"`
	DeliverySerial uint64          `json:"delivery_serial"`
	Status         string          `json:"status"`
}

// PublishAck describes what one channel of an HTTP publish became.
type PublishAck struct {
	Channel string
	// Serial and StreamID are set when the channel keeps history (0 and "" when the store
	// failed or the channel keeps none).
	Serial    uint64
	StreamID  string
	MessageID string
	// MessageSerial and VersionSerial are set when the message is mutable; HistorySerial
	// and DeliverySerial are then its Serial.
	MessageSerial string
	VersionSerial string
}

// versionedFor reports whether HTTP publishes to channel create mutable messages here.
// Never on encrypted channels: the server cannot read, edit or append to their ciphertext.
func (a *appState) versionedFor(channel string) bool {
	return a.hub.versions != nil && a.cfg.VersionedFor(channel) && protocol.Classify(channel).Type != protocol.Encrypted
}

// markCreate makes m, an HTTP publish to a versioned channel, the create of a mutable
// message: a message serial, which is also its first version serial.
func markCreate(m *protocol.Message) {
	serial := protocol.FormatSerial(m.PublishedAtMs, serialNode, serialCounter.Add(1))
	m.Mutable = &protocol.Mutable{Action: protocol.ActionCreate, MessageSerial: serial,
		Version: protocol.VersionMeta{Serial: serial, TimestampMs: m.PublishedAtMs}}
}

// storeCreate stores a create and its first aggregate through Versions. Callers hold the
// channel's sequencer ticket, every earlier append of the channel stored.
func (a *appState) storeCreate(ctx context.Context, m *protocol.Message) error {
	return a.hub.versions.Create(ctx, a.cfg.ID, m, firstAggregate(m))
}

// firstAggregate is the aggregate a create starts its mutable message with.
func firstAggregate(m *protocol.Message) protocol.VersionedMessage {
	mu := m.Mutable
	return protocol.VersionedMessage{Channel: m.Channel, MessageSerial: mu.MessageSerial, Event: m.Event, Data: m.Data, Extras: m.Extras,
		Tags: m.Tags, UserID: m.UserID, OriginalClientID: mu.Version.ClientID, LatestAction: protocol.ActionCreate,
		LatestVersion: mu.Version, CreatedAtMs: m.PublishedAtMs}
}

// mutationError builds a refused mutation.
func mutationError(status int, kind, msg string) *HistoryError { return histErr(status, kind, msg) }

// Mutate applies an update, delete or append to a mutable message, delivers it live (V2
// subscribers only) and answers with its serials. A retried op_id gets the first answer
// with status "duplicate" and delivers nothing.
func (h *Hub) Mutate(ctx context.Context, appID string, req MutationRequest) (MutationResult, *HistoryError) {
	a, ok := h.byID[appID]
	if !ok {
		return MutationResult{}, mutationError(404, "app_not_found", "Unknown app")
	}
	return a.mutate(ctx, req)
}

func (a *appState) mutate(ctx context.Context, req MutationRequest) (MutationResult, *HistoryError) {
	ch, op := req.Channel, &req.Op
	if herr := a.checkVersioned(ch, req.MessageSerial); herr != nil {
		return MutationResult{}, herr
	}
	if herr := a.checkMutation(op); herr != nil {
		return MutationResult{}, herr
	}
	var actor *mutationActor // nil: a privileged server operation
	if req.SocketID != "" {
		var herr *HistoryError
		if actor, herr = a.bindSocket(ch, &req); herr != nil {
			return MutationResult{}, herr
		}
	}
	var opKey, fp string
	if op.OpID != "" {
		opKey, fp = operationKey(a.cfg.ID, ch, req.MessageSerial, op)
	}
	defer a.exclusive(ch)()
	now := a.hub.now().UnixMilli()
	plan := func(cur protocol.VersionedMessage) (protocol.MutationPlan, error) {
		if err := actor.authorize(op.Action, ch, cur.OriginalClientID); err != nil {
			return protocol.MutationPlan{}, err
		}
		serial, ts := protocol.NextVersionSerial(cur.LatestVersion.Serial, now, serialNode, serialCounter.Add(1))
		meta := protocol.VersionMeta{Serial: serial, ClientID: op.ClientID, TimestampMs: ts, Description: op.Description, Metadata: op.Metadata}
		next, err := cur.Apply(op, meta)
		if err != nil {
			return protocol.MutationPlan{}, err
		}
		data := next.Data
		if op.Action == protocol.ActionAppend {
			data = op.Data
		}
		d := next.Delivery(op.Action, data, a.newMessageID(ch), false)
		return protocol.MutationPlan{Next: next, Delivery: d, Version: protocol.MessageVersion{
			MessageSerial: cur.MessageSerial, HistorySerial: cur.HistorySerial, Action: op.Action, Event: next.Event,
			Data: data, Extras: next.Extras, Version: meta,
		}}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, historyTimeout)
	res, dup, err := a.hub.versions.Mutate(ctx, a.cfg.ID, ch, req.MessageSerial, opKey, fp, plan)
	cancel()
	switch {
	case errors.Is(err, ErrMessageNotFound):
		return MutationResult{}, mutationError(404, "not_found", "Message "+protocol.Truncate(req.MessageSerial, 128)+" not found on channel "+protocol.Truncate(ch, 200))
	case errors.As(err, new(*notPermitted)):
		return MutationResult{}, mutationError(403, "mutable_not_permitted", err.Error())
	case errors.Is(err, ErrOperationConflict):
		return MutationResult{}, mutationError(400, "invalid_input", "op_id "+strconv.Quote(op.OpID)+": "+err.Error())
	case errors.Is(err, protocol.ErrAppendNotString):
		return MutationResult{}, mutationError(409, "append_not_supported", "Cannot append: "+err.Error()+"; the message data is not a string")
	case errors.Is(err, protocol.ErrEmptyFragment), errors.Is(err, protocol.ErrFragmentType):
		return MutationResult{}, mutationError(400, "invalid_input", err.Error())
	case err != nil:
		a.hub.log.Warn("mutable message: store failed", zap.String("app_id", a.cfg.ID), zap.String("channel", ch), zap.Error(err))
		return MutationResult{}, mutationError(503, "persistence_unavailable", "History store unavailable: retry later")
	}
	out := MutationResult{Channel: ch, MessageSerial: req.MessageSerial, Action: op.Action, Accepted: true, Status: "applied",
		VersionSerial: res.Version.Version.Serial, HistorySerial: res.Version.HistorySerial, DeliverySerial: res.Version.DeliverySerial}
	if dup {
		out.Action, out.Status = res.Version.Action, "duplicate"
		return out, nil
	}
	d := res.Delivery
	a.deliver(d, nil, "")
	a.versionCreated(ch, d.Mutable)
	kept := *d // the hot buffer need not hold the whole string: replays rebuild it (appendFulls)
	keptMu := *d.Mutable
	keptMu.Full, kept.Mutable = nil, &keptMu
	a.remember(&kept, a.hub.now())
	return out, nil
}

// checkVersioned refuses requests for channels without mutable messages and bad serials.
func (a *appState) checkVersioned(ch, serial string) *HistoryError {
	if err := protocol.ValidateChannelName(ch, a.cfg.MaxChannelNameLength); err != nil {
		return mutationError(400, "invalid_input", err.Message)
	}
	if a.hub.history == nil || !a.cfg.HistoryFor(ch) {
		return mutationError(422, "feature_disabled", "History is not enabled for channel "+protocol.Truncate(ch, 200)+": mutable messages need it")
	}
	if protocol.Classify(ch).Type == protocol.Encrypted {
		return mutationError(422, "feature_disabled", "Encrypted channels have no mutable messages: the server cannot read their payloads")
	}
	if !a.versionedFor(ch) {
		return mutationError(422, "feature_disabled", "Mutable messages are not enabled for channel "+protocol.Truncate(ch, 200))
	}
	if !protocol.ValidSerial(serial) {
		return mutationError(400, "invalid_input", "message_serial must be 1 to 128 bytes without whitespace")
	}
	return nil
}

// checkMutation validates the shape and size of an operation.
func (a *appState) checkMutation(op *protocol.Mutation) *HistoryError {
	if len(op.OpID) > protocol.MaxOpIDLen {
		return mutationError(400, "invalid_input", "op_id must be 1 to 64 bytes")
	}
	limit := a.cfg.MaxEventPayloadKB * 1024
	if len(op.Data) > limit {
		return mutationError(413, "payload_too_large", "data is larger than "+strconv.Itoa(a.cfg.MaxEventPayloadKB)+" KB")
	}
	if len(op.Extras)+len(op.Metadata)+len(op.Description) > limit {
		return mutationError(413, "payload_too_large", "extras, metadata and description are larger than "+strconv.Itoa(a.cfg.MaxEventPayloadKB)+" KB")
	}
	if op.Name != nil {
		if err := protocol.ValidateEventName(*op.Name, a.cfg.MaxEventNameLength); err != nil {
			return mutationError(400, "invalid_input", "name: "+err.Message)
		}
	}
	if op.Action == protocol.ActionAppend {
		if len(op.Data) == 0 || op.Data[0] != '"' {
			return mutationError(400, "invalid_input", "append needs data: a string fragment")
		}
		if string(op.Data) == `""` && !protocol.TerminalAppend(op.Extras) {
			return mutationError(400, "invalid_input", protocol.ErrEmptyFragment.Error())
		}
	}
	return nil
}

// bindSocket checks a mutation bound to a connection: the socket is connected here and
// subscribed to the channel, speaks V2, is the client it claims to be, and its capability
// token (if any) grants publish on the channel. It returns the actor the mutation must then
// be authorized for (mutationActor.authorize); the socket's identity becomes the actor.
func (a *appState) bindSocket(channel string, req *MutationRequest) (*mutationActor, *HistoryError) {
	if !protocol.ValidSocketID(req.SocketID) {
		return nil, mutationError(400, "invalid_input", "socket_id is not a valid socket id")
	}
	conn := a.connOn(channel, req.SocketID)
	if conn == nil {
		return nil, mutationError(401, "unauthorized", "Socket "+req.SocketID+" is not connected to channel "+protocol.Truncate(channel, 200))
	}
	if !conn.v2 {
		return nil, mutationError(401, "unauthorized", "Socket "+req.SocketID+" does not speak protocol V2")
	}
	user, caps := conn.identity()
	if req.Op.ClientID != "" && req.Op.ClientID != user {
		return nil, mutationError(401, "unauthorized", "client_id does not match the user signed in on socket "+req.SocketID)
	}
	if err := conn.allow(protocol.OpPublish, channel); err != nil {
		return nil, mutationError(403, "mutable_not_permitted", err.Message)
	}
	if req.Op.ClientID == "" {
		req.Op.ClientID = user
	}
	req.Op.UserID = user
	return &mutationActor{socketID: req.SocketID, clientID: user, caps: caps}, nil
}

// connOn returns this node's connection with socketID among the channel's subscribers.
func (a *appState) connOn(channel, socketID string) *Conn {
	ch := a.lookup(channel)
	if ch == nil {
		return nil
	}
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	for c := range ch.subs {
		if c.socketID == socketID {
			return c
		}
	}
	return nil
}

// identity returns who the connection is: its signed-in user, else its capability token's
// client id ("" when neither), and its token's grants (nil without a token).
func (c *Conn) identity() (string, *protocol.Capabilities) {
	c.mu.Lock()
	defer c.mu.Unlock()
	user := c.user
	var caps *protocol.Capabilities
	if c.token != nil {
		caps = c.token.Capabilities
		if user == "" {
			user = c.token.ClientID
		}
	}
	return user, caps
}

// mutationActor is the connection a socket-bound mutation acts as.
type mutationActor struct {
	socketID string
	clientID string // "" when the connection has no identity
	caps     *protocol.Capabilities
}

// notPermitted is a mutation the actor's capabilities do not allow (403).
type notPermitted struct{ msg string }

func (e *notPermitted) Error() string { return e.msg }

// authorize checks, as Sockudo does, that the actor may apply action to a message of channel
// created by owner ("" when unknown): message-<action>-any allows it on any message,
// message-<action>-own only on messages the actor's client created. Without a token the
// connection holds neither (the operations need an explicit grant). A nil actor is the
// privileged server and may do anything.
func (act *mutationActor) authorize(action protocol.Action, channel, owner string) error {
	if act == nil {
		return nil
	}
	own, any, _ := protocol.MutationOps(action)
	switch {
	case act.caps.Allows(any, channel):
		return nil
	case !act.caps.Allows(own, channel) && act.caps == nil:
		return &notPermitted{fmt.Sprintf("Socket %s may not %s messages on channel %s: it has no capability token, and %s or %s must be granted",
			act.socketID, action, protocol.Truncate(channel, 200), any, own)}
	case !act.caps.Allows(own, channel):
		return &notPermitted{fmt.Sprintf("Socket %s may not %s messages on channel %s: its capability token grants neither %s nor %s",
			act.socketID, action, protocol.Truncate(channel, 200), any, own)}
	case act.clientID == "":
		return &notPermitted{fmt.Sprintf("Socket %s may only %s its own messages (%s) but has no client identity", act.socketID, action, own)}
	case owner == "":
		return &notPermitted{fmt.Sprintf("Socket %s may only %s its own messages (%s): this message's creator is unknown", act.socketID, action, own)}
	case subtle.ConstantTimeCompare([]byte(owner), []byte(act.clientID)) != 1:
		return &notPermitted{fmt.Sprintf("Socket %s may only %s its own messages (%s): this one was created by another client", act.socketID, action, own)}
	}
	return nil
}

// operationKey returns the op_id key (scoped to app, channel, message and action) and the
// fingerprint of the operation's content.
func operationKey(appID, channel, serial string, op *protocol.Mutation) (string, string) {
	k := sha256.New()
	for _, s := range []string{appID, channel, serial, string(op.Action), op.OpID} {
		k.Write([]byte(strconv.Itoa(len(s))))
		k.Write([]byte{':'})
		k.Write([]byte(s))
	}
	name := ""
	if op.Name != nil {
		name = "=" + *op.Name
	}
	body, _ := json.Marshal([]any{name, json.RawMessage(nonEmpty(op.Data)), json.RawMessage(nonEmpty(op.Extras)), op.ClearName, op.ClearData,
		op.ClearExtras, op.ClientID, op.Description, json.RawMessage(nonEmpty(op.Metadata)), op.UserID})
	f := sha256.Sum256(body)
	return hex.EncodeToString(k.Sum(nil)), hex.EncodeToString(f[:])
}

func nonEmpty(b []byte) []byte {
	if len(b) == 0 {
		return []byte("null")
	}
	return b
}

// ReadMessage returns a mutable message's latest version as a VersionedRealtimeMessage.
func (h *Hub) ReadMessage(ctx context.Context, appID, channel, serial string) (json.RawMessage, *HistoryError) {
	a, ok := h.byID[appID]
	if !ok {
		return nil, mutationError(404, "app_not_found", "Unknown app")
	}
	if herr := a.checkVersioned(channel, serial); herr != nil {
		return nil, herr
	}
	agg, err := h.versions.Message(ctx, appID, channel, serial)
	switch {
	case errors.Is(err, ErrMessageNotFound):
		return nil, mutationError(404, "not_found", "Message "+protocol.Truncate(serial, 128)+" not found on channel "+protocol.Truncate(channel, 200))
	case err != nil:
		return nil, mutationError(503, "persistence_unavailable", "History store unavailable: retry later")
	}
	return protocol.AppendVersioned(nil, agg.Summary()), nil
}

// VersionPage is one page of a message's versions (GET .../versions).
type VersionPage struct {
	Channel    string            `json:"channel"`
	Direction  string            `json:"direction"`
	Limit      int               `json:"limit"`
	HasMore    bool              `json:"has_more"`
	NextCursor *string           `json:"next_cursor,omitempty"`
	Items      []json.RawMessage `json:"items"`
}

// ReadVersions returns a page of a message's versions: for an append, data is the
// fragment it appended. after is the previous page's next_cursor.
func (h *Hub) ReadVersions(ctx context.Context, appID, channel, serial string, dir protocol.Direction, limit int, after string) (*VersionPage, *HistoryError) {
	a, ok := h.byID[appID]
	if !ok {
		return nil, mutationError(404, "app_not_found", "Unknown app")
	}
	if herr := a.checkVersioned(channel, serial); herr != nil {
		return nil, herr
	}
	if limit <= 0 || limit > MaxHistoryPage {
		return nil, mutationError(400, "invalid_input", "limit must be 1 to 100")
	}
	if after != "" && !protocol.ValidSerial(after) {
		return nil, mutationError(400, "invalid_input", "cursor is not a version serial")
	}
	vs, more, err := h.versions.ReadVersions(ctx, appID, channel, serial, VersionQuery{Direction: dir, Limit: limit, After: after})
	switch {
	case errors.Is(err, ErrMessageNotFound):
		return nil, mutationError(404, "not_found", "Message "+protocol.Truncate(serial, 128)+" not found on channel "+protocol.Truncate(channel, 200))
	case err != nil:
		return nil, mutationError(503, "persistence_unavailable", "History store unavailable: retry later")
	}
	p := &VersionPage{Channel: channel, Direction: dir.String(), Limit: limit, HasMore: more, Items: make([]json.RawMessage, 0, len(vs))}
	for i := range vs {
		p.Items = append(p.Items, protocol.AppendVersioned(nil, versionMessage(channel, &vs[i])))
	}
	if more && len(vs) > 0 {
		c := vs[len(vs)-1].Version.Serial
		p.NextCursor = &c
	}
	return p, nil
}

// versionMessage is the delivery form of one stored version.
func versionMessage(channel string, v *protocol.MessageVersion) *protocol.Message {
	m := &protocol.Message{Event: protocol.MutationEvent(v.Action), Channel: channel, Data: v.Data, Name: v.Event, Extras: v.Extras,
		MessageID: v.MessageID, StreamID: v.StreamID, Serial: v.DeliverySerial,
		Mutable: &protocol.Mutable{Action: v.Action, MessageSerial: v.MessageSerial, HistorySerial: v.HistorySerial, Version: v.Version}}
	return m
}

// latestOf replaces, in place, each create in msgs whose message was since updated,
// deleted or appended to with its latest aggregate (protocol.VersionedMessage.Summary,
// sent as sockudo:message.<latest action>), as history listings and rewind show them. A
// message never mutated is shown as it was published, under its own event name (Sockudo
// shows it as sockudo:message.create, which a client bound to the event would miss), and
// so is one whose aggregate is gone.
func (a *appState) latestOf(ctx context.Context, channel string, msgs []protocol.Message) error {
	if a.hub.versions == nil {
		return nil
	}
	var serials []string
	for i := range msgs {
		if mu := msgs[i].Mutable; mu != nil && mu.Action == protocol.ActionCreate {
			serials = append(serials, mu.MessageSerial)
		}
	}
	if len(serials) == 0 {
		return nil
	}
	latest, err := a.hub.versions.Latest(ctx, a.cfg.ID, channel, serials)
	if err != nil {
		return err
	}
	for i := range msgs {
		if mu := msgs[i].Mutable; mu != nil && mu.Action == protocol.ActionCreate {
			if agg, ok := latest[mu.MessageSerial]; ok && agg.LatestAction != protocol.ActionCreate {
				msgs[i] = *agg.Summary()
			}
		}
	}
	return nil
}

// appendFulls returns, for an append_mode=full connection replaying msgs (consecutive
// deliveries of one channel, in serial order), the whole data after each append, by index.
// The data before a message's first replayed delivery is folded from its stored versions.
func (a *appState) appendFulls(ctx context.Context, channel string, msgs []*protocol.Message) (map[int][]byte, error) {
	var out map[int][]byte
	state := map[string][]byte{}
	for i, m := range msgs {
		mu := m.Mutable
		if mu == nil || a.hub.versions == nil {
			continue
		}
		s := mu.MessageSerial
		if mu.Action != protocol.ActionAppend {
			state[s] = m.Data
			continue
		}
		cur, known := state[s]
		if !known {
			var err error
			if cur, err = a.dataBefore(ctx, channel, s, mu.Version.Serial); err != nil {
				return nil, err
			}
		}
		cur = concatData(cur, m.Data)
		state[s] = cur
		if out == nil {
			out = map[int][]byte{}
		}
		out[i] = cur
	}
	return out, nil
}

// dataBefore folds a message's versions older than version into its data then.
func (a *appState) dataBefore(ctx context.Context, channel, serial, version string) ([]byte, error) {
	var data []byte
	after := ""
	for {
		vs, more, err := a.hub.versions.ReadVersions(ctx, a.cfg.ID, channel, serial, VersionQuery{Direction: protocol.OldestFirst, Limit: 1000, After: after})
		if err != nil {
			return nil, err
		}
		for i := range vs {
			if vs[i].Version.Serial >= version {
				return data, nil
			}
			if vs[i].Action == protocol.ActionAppend {
				data = concatData(data, vs[i].Data)
			} else {
				data = vs[i].Data
			}
		}
		if !more || len(vs) == 0 {
			return data, nil
		}
		after = vs[len(vs)-1].Version.Serial
	}
}

// concatData appends a JSON string fragment to JSON string data (protocol.AppendData);
// data it cannot append to is returned unchanged.
func concatData(cur, frag []byte) []byte {
	next, err := protocol.AppendData(cur, frag)
	if err != nil {
		return cur
	}
	return next
}
