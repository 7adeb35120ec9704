package server

import (
	"encoding/json"

	"github.com/pushwire/pushwire/protocol"
)

// dispatch handles one inbound frame. Protocol errors are answered with an error frame and
// the connection stays open.
func (c *conn) dispatch(f protocol.Frame) {
	name, system := protocol.Canonical(f.Event)
	if f.Event == "channel_history" {
		name, system = f.Event, true // also accepted without a prefix
	}
	if !system {
		if len(f.Event) > len(protocol.PrefixClient) && f.Event[:len(protocol.PrefixClient)] == protocol.PrefixClient {
			if err := c.hc.ClientEvent(f); err != nil {
				c.sendErrorOn(f.Channel, err)
			}
			return
		}
		c.sendError(protocol.Errorf(protocol.CodeGeneric, "Unknown event %q: clients may only send pusher: events and client- events", protocol.Truncate(f.Event, 64)))
		return
	}
	switch name {
	case "ping":
		c.Send(protocol.Pong(c.version))
	case "pong":
		// Liveness only; touch() already ran.
	case "subscribe":
		parse := protocol.ParseSubscribe
		if c.version == protocol.V2 {
			parse = protocol.ParseSubscribeV2
		}
		req, err := parse(f.Data)
		if err != nil {
			if req.Channel != "" {
				c.subscriptionFailed(req.Channel, err) // e.g. a malformed V2 filter
			} else {
				c.sendError(err)
			}
			return
		}
		if err := c.subscribeLimits(req); err != nil {
			c.subscriptionFailed(req.Channel, err)
			return
		}
		if req.Rewind != nil {
			c.withHistorySlot(func() { err = c.hc.Subscribe(req) })
		} else {
			err = c.hc.Subscribe(req)
		}
		if err != nil {
			c.subscriptionFailed(req.Channel, err)
		}
	case "unsubscribe":
		ch, ok := unsubscribeChannel(f.Data)
		if !ok {
			c.sendError(&protocol.Error{Code: protocol.CodeGeneric, Message: "Invalid unsubscribe data: expected {\"channel\":\"name\"}"})
			return
		}
		c.hc.Unsubscribe(ch)
	case "signin":
		if err := c.hc.SignIn(f.Data); err != nil {
			c.sendError(err)
		}
	case "presence_update":
		if err := c.hc.PresenceUpdate(f.Data, f.Channel); err != nil {
			c.sendError(err)
		}
	case "auth":
		if err := c.refreshToken(f.Data); err != nil {
			c.sendError(err)
		}
	case "resume":
		if !c.allowResume() {
			c.sendError(protocol.Errorf(protocol.CodeClientEventRefused, "Rate limit exceeded: at most %d resume requests a minute", c.srv.opts.ResumeRequestsPerMinute))
			return
		}
		var err *protocol.Error
		c.withHistorySlot(func() { err = c.hc.Resume(f.Data) })
		if err != nil {
			c.sendError(err)
		}
	case "enable_delta_compression":
		if err := c.hc.EnableDelta(f.Data); err != nil {
			c.sendError(err)
		}
	case "delta_sync_error":
		if err := c.hc.DeltaSyncError(f.Data, f.Channel); err != nil {
			c.sendError(err)
		}
	case "channel_history":
		if perr := c.allowHistoryRead(); perr != nil {
			c.sendErrorOn(f.Channel, perr)
			return
		}
		var err *protocol.Error
		c.withHistorySlot(func() { err = c.hc.ChannelHistory(f.Data, f.Channel) })
		if err != nil {
			c.sendError(err)
		}
	default:
		c.sendError(protocol.Errorf(protocol.CodeGeneric, "Unknown event %q", protocol.Truncate(f.Event, 64)))
	}
}

// subscriptionFailed reports a refused subscription twice: a connection-level error frame
// (what Pusher sends) and a pusher:subscription_error on the channel, which pusher-js and
// laravel-echo surface on the channel object. The connection stays open.
func (c *conn) subscriptionFailed(channel string, err *protocol.Error) {
	typ, status := "SubscriptionError", 400
	switch err.Code {
	case protocol.CodeUnauthorized:
		typ, status = "AuthError", 401
	case protocol.CodeOverCapacity:
		typ, status = "LimitReached", 403
	case protocol.CodeClientEventRefused:
		typ, status = "LimitReached", 429
	}
	c.sendErrorOn(channel, err)
	if len(channel) <= 256 {
		c.Send(protocol.SubscriptionError(c.version, channel, typ, status, err))
	}
}

// subscribeLimits refuses a new subscription over MaxSubscriptionsPerConnection, and a
// rewind over the history-read rate.
func (c *conn) subscribeLimits(req protocol.SubscribeRequest) *protocol.Error {
	o := &c.srv.opts
	n, already := c.hc.Subscriptions(req.Channel)
	if o.MaxSubscriptionsPerConnection > 0 && !already && n >= o.MaxSubscriptionsPerConnection {
		return protocol.Errorf(protocol.CodeOverCapacity, "Subscription limit reached: at most %d channels per connection", o.MaxSubscriptionsPerConnection)
	}
	if req.Rewind != nil {
		return c.allowHistoryRead()
	}
	return nil
}

// historyLimited is the error of a history read over the rate.
func (c *conn) historyLimited() *protocol.Error {
	o := &c.srv.opts
	return protocol.Errorf(protocol.CodeClientEventRefused, "Rate limit exceeded: at most %d history requests a second (burst %d)", o.HistoryRequestsPerSecond, o.HistoryRequestBurst)
}

// unsubscribeChannel reads {"channel":"x"}, its string-encoded form, or a bare "x".
func unsubscribeChannel(data json.RawMessage) (string, bool) {
	var w struct {
		Channel string `json:"channel"`
	}
	if protocol.DecodeData(data, &w) == nil && w.Channel != "" {
		return w.Channel, true
	}
	if s, ok := protocol.StringOrRaw(data); ok && len(data) > 0 && data[0] == '"' && s != "" && s[0] != '{' {
		return s, true
	}
	return "", false
}

// refreshToken handles sockudo:auth {"token":"<JWT>"}: a fresh capability token for the
// same client replaces the connection's (auth_success), or the error says why not.
func (c *conn) refreshToken(data json.RawMessage) *protocol.Error {
	if c.version != protocol.V2 {
		return &protocol.Error{Code: protocol.CodeUnauthorized, Message: "Authentication error: sockudo:auth needs a protocol=2 connection"}
	}
	var w struct {
		Token string `json:"token"`
	}
	if err := protocol.DecodeData(data, &w); err != nil || w.Token == "" {
		return &protocol.Error{Code: protocol.CodeUnauthorized, Message: "Authentication error: auth data must be {\"token\":\"<JWT>\"}"}
	}
	app, ok := c.srv.hub.AppByID(c.appID)
	if !ok {
		return &protocol.Error{Code: protocol.CodeAppNotFound, Message: "App not found"}
	}
	claims, err := protocol.ParseCapabilityToken(w.Token, app.Key, app.Secret, c.srv.opts.Now())
	if err != nil {
		return err
	}
	return c.hc.RefreshToken(claims)
}
