package channels

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/protocol"
)

// Event is one server-side publish: an event name and its data for one or more channels.
type Event struct {
	Name     string
	Channels []string
	// Data is the event payload, delivered as a JSON string value.
	Data string
	// ExceptSocketID, when a valid socket id, excludes that connection from delivery.
	ExceptSocketID string
	// Tags (V2) are filter metadata, sent top-level to V2 subscribers.
	Tags map[string]string
	// Extras (V2) is the validated extras object as JSON, sent to V2 subscribers only.
	Extras []byte
	// Ephemeral messages are delivered live only: no serial, history or webhook.
	Ephemeral bool
	// NoDelta sends the message as a full frame to delta subscribers.
	NoDelta bool
	// MessageID, when set, is the message id of every channel's delivery (the publisher's
	// message_id, validated by protocol.ValidateMessageID); otherwise each gets a fresh UUID.
	MessageID string
}

// ErrUnknownApp is returned for an app id this hub does not serve.
var ErrUnknownApp = errors.New("channels: unknown app")

// Publish delivers ev to the local subscribers of each of its channels and updates cache
// channels. Channel and event names are validated first; nothing is sent if one is invalid.
// Each channel's frame is encoded once and shared by every subscriber.
func (h *Hub) Publish(appID string, ev Event) error {
	_, err := h.PublishAcks(appID, ev)
	return err
}

// PublishAcks is Publish reporting what the message became on each channel: its serial
// and, on channels with mutable messages, its message serial.
func (h *Hub) PublishAcks(appID string, ev Event) ([]PublishAck, error) {
	return h.PublishAcksCtx(context.Background(), appID, ev)
}

// PublishAcksCtx is PublishAcks for a publisher that may go away (an HTTP request): see
// StartPublish for what ctx cancels.
func (h *Hub) PublishAcksCtx(ctx context.Context, appID string, ev Event) ([]PublishAck, error) {
	wait, err := h.StartPublish(ctx, appID, ev)
	if err != nil {
		return nil, err
	}
	return wait(), nil
}

// StartPublish validates ev and puts its message on each channel in the channel's order
// (on channels with history: queued for its serial, which a pipelined store commits in
// groups), and returns the function that waits until every channel has stored and delivered
// it and reports the acks. The caller must call wait exactly once; starting several events
// before waiting for them (a batch) lets a pipelined store carry them in one round trip, and
// they keep their order on each channel.
//
// ctx is the publisher's: when it is done before the publish starts, nothing is published
// and its error is returned. Once started, the event is stored and delivered on every one
// of its channels whatever happens to ctx: a message that may have a serial is never left
// undelivered, or delivered on some channels only.
func (h *Hub) StartPublish(ctx context.Context, appID string, ev Event) (wait func() []PublishAck, err error) {
	app, ok := h.byID[appID]
	if !ok {
		return nil, fmt.Errorf("publish to %s: %w", appID, ErrUnknownApp)
	}
	if err := protocol.ValidateEventName(ev.Name, app.cfg.MaxEventNameLength); err != nil {
		return nil, err
	}
	if len(ev.Channels) == 0 {
		return nil, &protocol.Error{Code: protocol.CodeGeneric, Message: "No channel given"}
	}
	for _, name := range ev.Channels {
		if err := protocol.ValidateChannelName(name, app.cfg.MaxChannelNameLength); err != nil {
			return nil, err
		}
	}
	if ev.MessageID != "" {
		if err := protocol.ValidateMessageID(ev.MessageID); err != nil {
			return nil, &protocol.Error{Code: protocol.CodeGeneric, Message: err.Error()}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("publish to %s: %w", appID, err)
	}
	except := ev.ExceptSocketID
	if !protocol.ValidSocketID(except) {
		except = ""
	}
	data := protocol.Str(ev.Data)
	now := h.now().UnixMilli()
	msgs := make([]*protocol.Message, len(ev.Channels))
	fins := make([]func(), len(ev.Channels))
	for i, name := range ev.Channels {
		id := ev.MessageID
		if id == "" {
			id = app.newMessageID(name)
		}
		m := &protocol.Message{Event: ev.Name, Channel: name, Data: data, Tags: ev.Tags, Extras: ev.Extras,
			Ephemeral: ev.Ephemeral, NoDelta: ev.NoDelta, MessageID: id, PublishedAtMs: now}
		if !ev.Ephemeral && app.versionedFor(name) {
			markCreate(m)
			if except != "" {
				// As in Sockudo, the publish's socket (signed in, or holding a token) is the
				// message's creator: the one message-*-own grants then apply to.
				if c := app.connOn(name, except); c != nil {
					m.Mutable.Version.ClientID, _ = c.identity()
				}
			}
		}
		msgs[i], fins[i] = m, app.begin(m, nil, except)
	}
	return func() []PublishAck {
		acks := make([]PublishAck, 0, len(msgs))
		for i, m := range msgs {
			fins[i]()
			if t := app.tapping(); t != nil {
				t.Record(Activity{Kind: ActPublish, AppID: appID, Channel: m.Channel, Event: ev.Name, Data: ev.Data})
			}
			ack := PublishAck{Channel: m.Channel, Serial: m.Serial, StreamID: m.StreamID, MessageID: m.MessageID}
			if m.Mutable != nil {
				ack.MessageSerial, ack.VersionSerial = m.Mutable.MessageSerial, m.Mutable.Version.Serial
				app.versionCreated(m.Channel, m.Mutable)
			}
			acks = append(acks, ack)
		}
		return acks
	}, nil
}

// historyTimeout bounds one synchronous history call (an append to a store that is not
// pipelined, a state read); past it an append's message is delivered without a serial and
// the store reported degraded.
const historyTimeout = 5 * time.Second

// queuedAppendTimeout bounds how long an append may wait in a pipelined store's queue
// before it is sent: long enough that a database stalled for several seconds loses no
// message (they are stored, in order, once it answers), short enough that a dead one turns
// into degraded deliveries. The store bounds the commit itself.
const queuedAppendTimeout = 15 * time.Second

// publish runs one message through the pipeline and returns once it is delivered.
func (a *appState) publish(m *protocol.Message, sender *Conn, exceptSocketID string) {
	a.begin(m, sender, exceptSocketID)()
}

// begin puts one message in its channel's order (sequencer.go) and returns the function
// that finishes it; every caller calls that exactly once. A channel without history (or
// an ephemeral message) has no order to keep beyond its publisher's: the message is
// delivered at once. Otherwise the message is handed to the store — queued, on a pipelined
// store, after the channel's earlier messages; stored after them otherwise — and finish
// waits for the store's answer and the channel's earlier deliveries, then delivers: with
// its serial, or, when the store failed, live without one (the channel is marked degraded).
func (a *appState) begin(m *protocol.Message, sender *Conn, exceptSocketID string) (finish func()) {
	hist := a.hub.history
	if hist == nil || m.Ephemeral || !a.cfg.HistoryFor(m.Channel) {
		a.deliver(m, sender, exceptSocketID)
		return func() {}
	}
	t := a.seq.take(m.Channel, ticketAppend)
	create := m.Mutable != nil && a.hub.versions != nil
	var res <-chan error
	pipe, pipelined := hist.(PipelinedHistory)
	pipeCreate, createPipelined := a.hub.versions.(PipelinedVersions)
	timeout := historyTimeout
	if create && createPipelined || !create && pipelined {
		timeout = queuedAppendTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	switch {
	case create && createPipelined:
		<-t.prevSub
		res = pipeCreate.CreateAsync(ctx, a.cfg.ID, m, firstAggregate(m))
	case !create && pipelined:
		<-t.prevSub
		res = pipe.AppendAsync(ctx, a.cfg.ID, m)
	default:
		// One call of its own (a mutable create is one transaction with its aggregate):
		// after every earlier append of the channel is stored.
		<-t.prevStored
		var err error
		if create {
			err = a.storeCreate(ctx, m)
		} else {
			err = hist.Append(ctx, a.cfg.ID, m)
		}
		r := make(chan error, 1)
		r <- err
		res = r
		t.submitted()
		// Stored now, not at finish: the next message of the channel may be begun before
		// this one finishes (a batch) and waits for this gate.
		t.storedNow()
	}
	t.submitted()
	return func() {
		// The store answers every append (a pipelined store within its own timeout):
		// waiting for it keeps m untouched by the store once delivered.
		err := <-res
		cancel()
		t.storedNow()
		t.turn()
		if err == nil {
			a.remember(m, a.hub.now())
		} else {
			a.markDegraded(m.Channel)
			m.Serial, m.StreamID, m.Mutable = 0, "", nil // not stored: no message serial to mutate
			a.hub.log.Warn("history degraded: message delivered live without a serial",
				zap.String("app_id", a.cfg.ID), zap.String("channel", m.Channel), zap.Error(err))
			if a.hub.onHistoryError != nil {
				a.hub.onHistoryError(a.cfg.ID, err)
			}
		}
		a.deliver(m, sender, exceptSocketID)
		t.done()
	}
}

// lockedState waits until the channel is quiet on this node (every earlier append stored
// and delivered), holds back its next messages until unlock, and reads the channel's stream
// state. Only this channel waits. Callers always call unlock.
func (a *appState) lockedState(channel string) (protocol.StreamState, func(), error) {
	unlock := a.exclusive(channel)
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	defer cancel()
	st, err := a.hub.history.State(ctx, a.cfg.ID, channel)
	return st, unlock, err
}

// newMessageID returns a fresh message_id for a message of channel (protocol.MessageIDs).
func (a *appState) newMessageID(channel string) string {
	return a.msgIDs.Next(maphash.String(a.hub.seed, channel))
}

// deliver delivers a message published on this node here, then to the other nodes of the
// cluster (cluster.go).
func (a *appState) deliver(m *protocol.Message, sender *Conn, exceptSocketID string) {
	if a.hub.cl.Load() == nil {
		a.deliverLocal(m, sender, exceptSocketID)
		return
	}
	a.deliverOrdered(m, sender, exceptSocketID)
	a.forward(m, exceptSocketID)
}

// deliverLocal stores a cache channel's last event and fans the message out to the
// channel's subscribers on this node.
func (a *appState) deliverLocal(m *protocol.Message, sender *Conn, exceptSocketID string) {
	name := m.Channel
	var v1, v2 []byte
	cache := protocol.Classify(name).Cache && !m.IsMutation() && !m.IsAnnotationFrame()
	if cache {
		v1, v2 = m.AppendV1(make([]byte, 0, m.Size())), m.AppendV2(make([]byte, 0, m.Size()))
	}
	pats := a.wildcardChannels(name) // nil unless wildcard subscriptions match
	if len(pats) > 0 && v2 == nil {
		v2 = m.AppendV2(make([]byte, 0, m.Size()))
	}
	s := a.shardFor(name)
	s.mu.RLock()
	ch := s.channels[name]
	if ch == nil {
		if cache {
			a.storeCache(name, v1, v2)
		}
		s.mu.RUnlock()
		if len(pats) > 0 {
			fanoutWildcards(m, nil, pats, sender, exceptSocketID, v2)
		}
		return
	}
	ch.mu.RLock()
	s.mu.RUnlock()
	if cache {
		a.storeCache(name, v1, v2)
	}
	ch.deliver(a, m, sender, exceptSocketID, v1, v2)
	if len(pats) > 0 {
		fanoutWildcards(m, ch, pats, sender, exceptSocketID, v2)
	}
	ch.mu.RUnlock()
}

// ClientEvent relays a client- event from this connection to the channel's other
// subscribers, enforcing Pusher's rules: rate limit, app feature, name, channel type
// (private or presence only), payload size and membership. user_id is added on presence
// channels. A V1 sender never receives its own event; a V2 sender does unless it connected
// with echo_messages=false. A capability token must grant publish on the channel.
func (c *Conn) ClientEvent(f protocol.Frame) *protocol.Error {
	app := c.app
	now := app.hub.now()
	if now.Sub(c.rlStart) >= time.Second {
		c.rlStart, c.rlCount = now, 0
	}
	c.rlCount++
	if c.rlCount > app.cfg.MaxClientEventsPerSecond {
		err := protocol.Errorf(protocol.CodeClientEventRefused, "Client event rejected due to rate limit (%d per second)", app.cfg.MaxClientEventsPerSecond)
		if app.cfg.TerminateOnClientEventLimit {
			c.sub.Close(err)
			return nil
		}
		return err
	}
	if !app.cfg.ClientMessages() {
		return &protocol.Error{Code: protocol.CodeClientEventRefused, Message: "Client events are not enabled for this app"}
	}
	if len(f.Event) <= len(protocol.PrefixClient) || !strings.HasPrefix(f.Event, protocol.PrefixClient) {
		return &protocol.Error{Code: protocol.CodeClientEventRefused, Message: "Client event names must start with client-"}
	}
	if len(f.Event) > app.cfg.MaxEventNameLength {
		return protocol.Errorf(protocol.CodeClientEventRefused, "Client event name is longer than %d bytes", app.cfg.MaxEventNameLength)
	}
	if f.Channel == "" {
		return &protocol.Error{Code: protocol.CodeClientEventRefused, Message: "Client event has no channel"}
	}
	if err := protocol.ValidateChannelName(f.Channel, app.cfg.MaxChannelNameLength); err != nil {
		return &protocol.Error{Code: protocol.CodeClientEventRefused, Message: err.Message}
	}
	class := protocol.Classify(f.Channel)
	if !class.AllowsClientEvents() {
		why := "public"
		switch {
		case class.Type == protocol.Encrypted:
			why = "encrypted"
		case class.Cache:
			why = "cache"
		case class.Type == protocol.User:
			why = "user"
		}
		return protocol.Errorf(protocol.CodeClientEventRefused, "Client events are not allowed on %s channels, only on private and presence channels", why)
	}
	if len(f.Data) > app.cfg.MaxEventPayloadKB*1024 {
		return protocol.Errorf(protocol.CodeClientEventRefused, "Client event data is larger than %d KB", app.cfg.MaxEventPayloadKB)
	}
	userID, subscribed := c.channels.get(f.Channel)
	if !subscribed {
		return protocol.Errorf(protocol.CodeClientEventRefused, "Socket %s is not subscribed to channel %s", c.socketID, f.Channel)
	}
	if err := c.allow(protocol.OpPublish, f.Channel); err != nil {
		return &protocol.Error{Code: protocol.CodeClientEventRefused, Message: err.Message}
	}
	data := f.Data
	if data == nil {
		data = json.RawMessage("{}")
	}
	m := &protocol.Message{Event: f.Event, Channel: f.Channel, Data: data, UserID: userID,
		MessageID: app.newMessageID(f.Channel), PublishedAtMs: now.UnixMilli()}
	app.publish(m, c, "")
	if obs := app.hub.obs; obs != nil {
		obs.ClientEvent(app.cfg.ID, f.Channel, f.Event, data, c.socketID, userID)
	}
	if t := app.tapping(); t != nil {
		s, _ := protocol.StringOrRaw(data)
		t.Record(Activity{Kind: ActClientEvent, AppID: app.cfg.ID, Channel: f.Channel, Event: f.Event, SocketID: c.socketID, UserID: userID, Data: s})
	}
	return nil
}
