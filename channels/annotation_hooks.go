package channels

import (
	"time"

	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

// The seam of annotations (package annotations): the feature stores, delivers and
// summarizes annotations on mutable messages; the hub calls it through AnnotationFeature
// (a new V2 subscription wants the current summaries; another node's summary arrived), and
// the feature acts on the hub only through the AnnotationNode that AttachAnnotations hands
// it. What stays here is what is the core's: who a connection is and what its token
// grants, whether a channel has mutable messages, and delivery in the channel's order.

// AnnotationFeature is the annotations feature as the hub calls it. annotations.Service
// implements it.
type AnnotationFeature interface {
	// Subscribed is called for every new V2 subscription of channel, in the subscribing
	// connection's goroutine after the channel's locks are released; send queues a frame
	// for that connection.
	Subscribed(appID, channel string, send func(frame []byte))
	// RemoteSummary delivers an annotation summary another node computed (replication
	// calls it through LocalNode.DeliverSummary).
	RemoteSummary(appID, channel, messageSerial string, version uint64, m *protocol.Message)
}

type annotationRef struct{ f AnnotationFeature }

// AttachAnnotations attaches the annotations feature to the hub and returns the hooks it
// acts through. Call it once, before the hub serves connections.
func (h *Hub) AttachAnnotations(f AnnotationFeature) *AnnotationNode {
	h.ann.Store(&annotationRef{f})
	return &AnnotationNode{h: h}
}

// annotationFeature is the attached feature, nil when none.
func (h *Hub) annotationFeature() AnnotationFeature {
	if r := h.ann.Load(); r != nil {
		return r.f
	}
	return nil
}

// AnnotationNode is what the annotations feature may do to the hub.
type AnnotationNode struct{ h *Hub }

// App returns the app with this id.
func (n *AnnotationNode) App(appID string) (config.App, bool) { return n.h.AppByID(appID) }

// Now is the hub's clock.
func (n *AnnotationNode) Now() time.Time { return n.h.now() }

// AfterFunc schedules f after d on the hub's clock.
func (n *AnnotationNode) AfterFunc(d time.Duration, f func()) Timer { return n.h.afterFunc(d, f) }

// Annotatable reports whether the channel keeps mutable messages here (history on, a
// versioned, non-encrypted channel).
func (n *AnnotationNode) Annotatable(appID, channel string) bool {
	a := n.h.byID[appID]
	return a != nil && a.hub.history != nil && a.cfg.HistoryFor(channel) && a.versionedFor(channel)
}

// CheckMessage refuses a request naming a message of channel when the channel has no
// mutable messages or the serial is not one (the answers of the mutable-message API).
func (n *AnnotationNode) CheckMessage(appID, channel, messageSerial string) *HistoryError {
	a := n.h.byID[appID]
	if a == nil {
		return histErr(404, "app_not_found", "Unknown app")
	}
	return a.checkVersioned(channel, messageSerial)
}

// Actor finds the V2 connection a socket-bound request acts as among the channel's
// subscribers on this node, and returns who it is (its signed-in user, else its token's
// client id) and what its token grants (nil without one).
func (n *AnnotationNode) Actor(appID, channel, socketID string) (user string, caps *protocol.Capabilities, herr *HistoryError) {
	a := n.h.byID[appID]
	if a == nil {
		return "", nil, histErr(404, "app_not_found", "Unknown app")
	}
	if !protocol.ValidSocketID(socketID) {
		return "", nil, histErr(400, "invalid_input", "socket_id is not a valid socket id")
	}
	conn := a.connOn(channel, socketID)
	if conn == nil {
		return "", nil, histErr(401, "unauthorized", "Socket "+socketID+" is not connected to channel "+protocol.Truncate(channel, 200))
	}
	if !conn.v2 {
		return "", nil, histErr(401, "unauthorized", "Socket "+socketID+" does not speak protocol V2")
	}
	user, caps = conn.identity()
	return user, caps, nil
}

// Deliver delivers a message (an annotation event) in the channel's order, here and on the
// other nodes.
func (n *AnnotationNode) Deliver(appID string, m *protocol.Message) {
	if a := n.h.byID[appID]; a != nil {
		a.deliver(m, nil, "")
	}
}

// DeliverLocal fans a message (a summary) out to the channel's subscribers on this node.
func (n *AnnotationNode) DeliverLocal(appID string, m *protocol.Message) {
	if a := n.h.byID[appID]; a != nil {
		a.deliverLocal(m, nil, "")
	}
}

// ForwardSummary sends a summary this node computed to the other nodes (nothing without a
// cluster).
func (n *AnnotationNode) ForwardSummary(appID, channel, messageSerial string, version uint64, m *protocol.Message) {
	if c := n.h.cluster(); c != nil {
		c.ForwardSummary(appID, channel, messageSerial, version, m)
	}
}

// allowAnnotationSubscribe checks a subscription asking for raw annotations: V2, a channel
// with mutable messages and annotations, and a capability token granting
// annotation-subscribe (Sockudo refuses connections without a token).
func (c *Conn) allowAnnotationSubscribe(name string) *protocol.Error {
	if !c.v2 {
		return &protocol.Error{Code: protocol.CodeChannelError, Message: "Annotation subscriptions are only supported on protocol V2"}
	}
	if c.app.hub.annotationFeature() == nil || !c.app.versionedFor(name) || c.app.hub.history == nil || !c.app.cfg.HistoryFor(name) {
		return protocol.Errorf(protocol.CodeChannelError, "Annotations are not enabled for channel %s", protocol.Truncate(name, 200))
	}
	_, caps := c.identity()
	if !caps.Allows(protocol.OpAnnotationSubscribe, name) {
		return protocol.Errorf(protocol.CodeUnauthorized, "Connection is not allowed to receive raw annotations for channel %s: its capability token must grant %s",
			protocol.Truncate(name, 200), protocol.OpAnnotationSubscribe)
	}
	return nil
}

// annotationSnapshots tells the annotations feature of a new V2 subscription (it sends the
// current summaries).
func (c *Conn) annotationSnapshots(channel string) {
	if f := c.app.hub.annotationFeature(); f != nil {
		f.Subscribed(c.app.cfg.ID, channel, c.sub.Send)
	}
}
