package channels

import (
	"encoding/json"
	"sort"
	"strconv"
	"sync"

	"github.com/pushwire/pushwire/protocol"
)

// channel is one occupied channel of an app. It exists while it has subscribers.
type channel struct {
	name  string
	class protocol.ChannelClass

	mu sync.RWMutex
	// subs maps each subscribed connection to its presence user id ("" off presence).
	subs map[*Conn]string
	// members holds presence members by user id (presence channels only).
	members map[string]*member
	// countPending is set while a coalesced subscription_count send is scheduled.
	countPending bool
}

type member struct {
	info  json.RawMessage
	conns int
}

func newChannel(name string, class protocol.ChannelClass) *channel {
	ch := &channel{name: name, class: class, subs: map[*Conn]string{}}
	if class.Type == protocol.Presence {
		ch.members = map[string]*member{}
	}
	return ch
}

// fanout sends frame to every subscriber but the excluded socket. Callers hold ch.mu (read).
func (ch *channel) fanout(frame []byte, except *Conn, exceptSocketID string) {
	for c := range ch.subs {
		if c == except || (exceptSocketID != "" && c.socketID == exceptSocketID) {
			continue
		}
		c.sub.Send(frame)
	}
}

// fanoutSystem sends a system frame, built once per wire dialect in use, to every
// subscriber but except. Callers hold ch.mu.
func (ch *channel) fanoutSystem(build func(protocol.Version) []byte, except *Conn) {
	var forms [3][]byte
	for c := range ch.subs {
		if c == except {
			continue
		}
		v := c.sub.Version()
		if forms[v] == nil {
			forms[v] = build(v)
		}
		c.sub.Send(forms[v])
	}
}

// presenceData is the double-encoded payload of a presence subscription_succeeded:
// {"presence":{"ids":[...],"hash":{...},"count":n}}. Callers hold ch.mu.
func (ch *channel) presenceData() []byte {
	ids := make([]string, 0, len(ch.members))
	for id := range ch.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	b := []byte(`{"presence":{"ids":[`)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = protocol.AppendJSONString(b, id)
	}
	b = append(b, `],"hash":{`...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = protocol.AppendJSONString(b, id)
		b = append(b, ':')
		b = append(b, ch.members[id].info...)
	}
	b = append(b, `},"count":`...)
	b = strconv.AppendInt(b, int64(len(ids)), 10)
	return append(b, `}}`...)
}
