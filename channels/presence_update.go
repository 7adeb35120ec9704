package channels

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/pushwire/pushwire/protocol"
)

// Presence-update limits (ws-protocol §3.7).
const (
	// MaxPresenceUpdateBytes caps the new user_info of one presence_update.
	MaxPresenceUpdateBytes = 1024
	// MaxPresenceUpdatesPerSecond is the per-connection presence_update rate.
	MaxPresenceUpdatesPerSecond = 10
)

// PresenceUpdate handles sockudo:presence_update (V2): the sender, a member of the presence
// channel, replaces its user_info, and every V2 subscriber of the channel (the sender
// included) gets sockudo_internal:presence_update. Later subscribers see the new info in
// the presence hash. frameChannel is the frame-level channel, used when data has none.
func (c *Conn) PresenceUpdate(data json.RawMessage, frameChannel string) *protocol.Error {
	if !c.v2 {
		return &protocol.Error{Code: protocol.CodeGeneric, Message: "presence_update needs a protocol 2 connection"}
	}
	var w struct {
		Channel json.RawMessage `json:"channel"`
		Data    json.RawMessage `json:"data"`
	}
	if err := protocol.DecodeData(data, &w); err != nil {
		return protocol.Errorf(protocol.CodeGeneric, "Invalid presence_update data: %v", err)
	}
	name := frameChannel
	if len(w.Channel) > 0 && string(w.Channel) != "null" {
		if json.Unmarshal(w.Channel, &name) != nil {
			return &protocol.Error{Code: protocol.CodeGeneric, Message: "Invalid presence_update data: channel must be a string"}
		}
	}
	if name == "" {
		return &protocol.Error{Code: protocol.CodeGeneric, Message: "Invalid presence_update data: channel is required"}
	}
	if protocol.Classify(name).Type != protocol.Presence {
		return protocol.Errorf(protocol.CodeChannelError, "presence_update is only for presence channels, not %s", protocol.Truncate(name, 200))
	}
	userID, subscribed := c.channels.get(name)
	if !subscribed {
		return protocol.Errorf(protocol.CodeChannelError, "Socket %s is not a member of %s", c.socketID, protocol.Truncate(name, 200))
	}
	if err := c.allow(protocol.OpPresence, name); err != nil {
		return err
	}
	info := bytes.TrimSpace(w.Data)
	if len(info) > 0 && info[0] == '"' {
		// A string holding JSON (clients double-encode); keep a plain string as a string.
		var s string
		if json.Unmarshal(info, &s) == nil && json.Valid([]byte(s)) {
			info = []byte(s)
		}
	}
	if len(info) == 0 || string(info) == "null" {
		info = []byte("{}")
	}
	if len(info) > MaxPresenceUpdateBytes {
		return protocol.Errorf(protocol.CodeChannelError, "presence_update data is %d bytes, the limit is %d", len(info), MaxPresenceUpdateBytes)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, info); err != nil {
		return &protocol.Error{Code: protocol.CodeGeneric, Message: "Invalid presence_update data: data must be JSON"}
	}
	now := c.app.hub.now()
	if now.Sub(c.puStart) >= time.Second {
		c.puStart, c.puCount = now, 0
	}
	if c.puCount++; c.puCount > MaxPresenceUpdatesPerSecond {
		return protocol.Errorf(protocol.CodeClientEventRefused, "presence_update rejected due to rate limit (%d per second)", MaxPresenceUpdatesPerSecond)
	}
	newInfo := json.RawMessage(compact.Bytes())
	ch := c.app.lookup(name)
	if ch == nil {
		return nil
	}
	ch.mu.Lock()
	m := ch.members[userID]
	if m == nil {
		ch.mu.Unlock()
		return nil
	}
	m.info = newInfo
	c.app.recordPresence(name, PresenceChange{Event: PresenceMemberUpdated, Cause: CauseUpdate, UserID: userID, ConnectionID: c.socketID, UserInfo: newInfo})
	c.app.clusterPresenceUpdate(name, userID, newInfo)
	var frame []byte
	var bin formCache
	for sc := range ch.subs {
		if !sc.v2 {
			continue // V1 has no presence_update
		}
		if frame == nil {
			frame = protocol.PresenceUpdate(protocol.V2, name, userID, newInfo)
		}
		sc.sub.SendEncoded(bin.frameFor(sc, frame))
	}
	ch.mu.Unlock()
	c.app.metaMember(name, protocol.MetaPresenceUpdate, userID)
	if po, ok := c.app.hub.obs.(PresenceUpdateObserver); ok {
		po.MemberUpdated(c.app.cfg.ID, name, userID, newInfo)
	}
	return nil
}
