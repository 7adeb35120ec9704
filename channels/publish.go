package channels

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

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
}

// ErrUnknownApp is returned for an app id this hub does not serve.
var ErrUnknownApp = errors.New("channels: unknown app")

// Publish delivers ev to the local subscribers of each of its channels and updates cache
// channels. Channel and event names are validated first; nothing is sent if one is invalid.
// Each channel's frame is encoded once and shared by every subscriber.
func (h *Hub) Publish(appID string, ev Event) error {
	app, ok := h.byID[appID]
	if !ok {
		return fmt.Errorf("publish to %s: %w", appID, ErrUnknownApp)
	}
	if err := protocol.ValidateEventName(ev.Name, app.cfg.MaxEventNameLength); err != nil {
		return err
	}
	if len(ev.Channels) == 0 {
		return &protocol.Error{Code: protocol.CodeGeneric, Message: "No channel given"}
	}
	for _, name := range ev.Channels {
		if err := protocol.ValidateChannelName(name, app.cfg.MaxChannelNameLength); err != nil {
			return err
		}
	}
	except := ev.ExceptSocketID
	if !protocol.ValidSocketID(except) {
		except = ""
	}
	data := protocol.Str(ev.Data)
	for _, name := range ev.Channels {
		frame := protocol.OutFrame{Event: ev.Name, Channel: name, Data: data}.Bytes()
		app.deliver(name, frame, except)
	}
	return nil
}

// deliver stores a cache channel's last event and fans frame out to the channel.
func (a *appState) deliver(name string, frame []byte, exceptSocketID string) {
	cache := protocol.Classify(name).Cache
	s := a.shardFor(name)
	s.mu.RLock()
	ch := s.channels[name]
	if ch == nil {
		if cache {
			a.storeCache(name, frame)
		}
		s.mu.RUnlock()
		return
	}
	ch.mu.RLock()
	s.mu.RUnlock()
	if cache {
		a.storeCache(name, frame)
	}
	ch.fanout(frame, nil, exceptSocketID)
	ch.mu.RUnlock()
}

// ClientEvent relays a client- event from this connection to the channel's other
// subscribers, enforcing Pusher's rules: rate limit, app feature, name, channel type
// (private or presence only), payload size and membership. user_id is added on presence
// channels. The sender never receives its own event.
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
	userID, subscribed := c.channels[f.Channel]
	if !subscribed {
		return protocol.Errorf(protocol.CodeClientEventRefused, "Socket %s is not subscribed to channel %s", c.socketID, f.Channel)
	}
	data := f.Data
	if data == nil {
		data = json.RawMessage("{}")
	}
	frame := protocol.OutFrame{Event: f.Event, Channel: f.Channel, Data: data, UserID: userID}.Bytes()
	if ch := app.lookup(f.Channel); ch != nil {
		ch.mu.RLock()
		ch.fanout(frame, c, "")
		ch.mu.RUnlock()
	}
	if obs := app.hub.obs; obs != nil {
		obs.ClientEvent(app.cfg.ID, f.Channel, f.Event, data, c.socketID, userID)
	}
	return nil
}
