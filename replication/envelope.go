package replication

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pushwire/pushwire/protocol"
)

// Envelope kinds.
const (
	envPublish   = "pub"   // a message to deliver: Msg, Except
	envJoin      = "join"  // the sender holds a presence member: Channel, User, Info
	envLeave     = "leave" // the sender no longer holds it: Channel, User
	envCounts    = "cnt"   // the sender's subscription counts of some channels: Counts
	envTerminate = "term"  // close every connection of User
	envReconnect = "recon" // close every connection of User with 4200 (force_reconnect)
	envHistory   = "hist"  // the channel's history was reset or purged: History
	envUpdate    = "pupd"  // a member of the sender replaced its user_info: Channel, User, Info
	envHello     = "hello" // the sender (re)appeared: send it your state
	envHeartbeat = "hb"    // the sender is alive
	envSync      = "sync"  // the sender's whole state, replacing what was known: Apps
	envBye       = "bye"   // the sender is shutting down: forget it now
	envSummary   = "asum"  // an annotation summary of a message: Msg, Channel, Summary
)

// envelope is what one node tells the others. It travels as wireEnvelope (wire.go:
// the explicit, versioned format), through encodeEnvelope and decodeEnvelope only; its
// tags name the same members as wireEnvelope's.
type envelope struct {
	Kind    string                   `json:"k"`
	Msg     *protocol.Message        `json:"-"` // on the wire: "m", a wireMessage
	Except  string                   `json:"x,omitempty"`
	Channel string                   `json:"c,omitempty"`
	User    string                   `json:"u,omitempty"`
	Info    []byte                   `json:"i,omitempty"`
	Counts  map[string]int           `json:"n,omitempty"`
	Apps    map[string]*nodeAppState `json:"s,omitempty"`
	History *historyChange           `json:"h,omitempty"`
	Summary *summaryEnvelope         `json:"a,omitempty"`
}

// nodeAppState is what one node holds of one app: subscription counts by channel and
// presence members (user id → user_info) by channel.
type nodeAppState struct {
	Counts  map[string]int                        `json:"n,omitempty"`
	Members map[string]map[string]json.RawMessage `json:"m,omitempty"`
}

// maxEnvelope bounds an envelope the decoder accepts.
const maxEnvelope = 256 << 20

// decodeEnvelope parses and checks one envelope.
func decodeEnvelope(b []byte) (*envelope, error) {
	if len(b) > maxEnvelope {
		return nil, fmt.Errorf("cluster envelope: %d bytes", len(b))
	}
	e, err := unmarshalEnvelope(b)
	if err != nil {
		return nil, err
	}
	switch e.Kind {
	case envPublish:
		if e.Msg == nil || e.Msg.Channel == "" || e.Msg.Event == "" {
			return nil, errors.New("cluster envelope: publish without a message")
		}
		if e.Msg.Mutable != nil && e.Msg.Mutable.Full != nil && e.Msg.Mutable.Action != protocol.ActionAppend {
			e.Msg.Mutable.Full = nil
		}
	case envSummary:
		if e.Msg == nil || e.Channel == "" || e.Summary == nil || e.Msg.Channel != e.Channel {
			return nil, errors.New("cluster envelope: summary without message")
		}
	case envJoin, envLeave, envUpdate:
		if e.Channel == "" || e.User == "" {
			return nil, fmt.Errorf("cluster envelope: %s without channel or user", e.Kind)
		}
		if e.Kind != envLeave && (len(e.Info) == 0 || !json.Valid(e.Info)) {
			e.Info = []byte("{}")
		}
	case envTerminate, envReconnect:
		if e.User == "" {
			return nil, fmt.Errorf("cluster envelope: %s without user", e.Kind)
		}
	case envHistory:
		if e.Channel == "" || e.History == nil {
			return nil, errors.New("cluster envelope: history change without channel")
		}
	case envCounts:
		for ch, n := range e.Counts {
			if n < 0 || ch == "" {
				return nil, fmt.Errorf("cluster envelope: count %d of channel %q", n, ch)
			}
		}
	case envSync:
		for app, st := range e.Apps {
			if st == nil {
				delete(e.Apps, app)
				continue
			}
			for ch, n := range st.Counts {
				if n < 0 || ch == "" {
					return nil, fmt.Errorf("cluster envelope: count %d of channel %q", n, ch)
				}
			}
			for ch, users := range st.Members {
				for u, info := range users {
					if u == "" || ch == "" {
						return nil, errors.New("cluster envelope: member without channel or user")
					}
					if len(info) == 0 || !json.Valid(info) {
						users[u] = json.RawMessage("{}")
					}
				}
			}
		}
	case envHello, envHeartbeat, envBye:
	default:
		return nil, fmt.Errorf("cluster envelope: unknown kind %q", e.Kind)
	}
	return e, nil
}
