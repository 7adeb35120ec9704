package protocol

import "strings"

// Version is the wire protocol a connection negotiated with its ?protocol= query parameter.
type Version uint8

const (
	// V1 is the Pusher protocol 7 dialect: pusher: and pusher_internal: event names.
	V1 Version = 1
	// V2 is the Sockudo-native dialect: sockudo: and sockudo_internal: event names.
	V2 Version = 2
)

// ParseVersion maps the value of the protocol query parameter to a Version: "2" is V2 and
// everything else (absent, "7", "5") is V1, as Sockudo and its clients do.
func ParseVersion(q string) Version {
	if strings.TrimSpace(q) == "2" {
		return V2
	}
	return V1
}

// Event-name prefixes of the two dialects.
const (
	PrefixPusher          = "pusher:"
	PrefixPusherInternal  = "pusher_internal:"
	PrefixSockudo         = "sockudo:"
	PrefixSockudoInternal = "sockudo_internal:"
	PrefixClient          = "client-"
)

// Canonical strips any of the four system prefixes from an event name and reports whether one
// was present. Inbound frames are dispatched on the canonical name, so either dialect is
// accepted on either protocol version.
func Canonical(event string) (name string, system bool) {
	for _, p := range [...]string{PrefixPusherInternal, PrefixPusher, PrefixSockudoInternal, PrefixSockudo} {
		if strings.HasPrefix(event, p) {
			return event[len(p):], true
		}
	}
	return event, false
}

// IsReservedEventName reports whether name starts with a system prefix that neither clients
// nor the HTTP API may publish.
func IsReservedEventName(name string) bool {
	_, sys := Canonical(name)
	return sys
}

// Outbound system event names, in the V1 dialect.
const (
	EventConnectionEstablished = "pusher:connection_established"
	EventError                 = "pusher:error"
	EventPing                  = "pusher:ping"
	EventPong                  = "pusher:pong"
	EventSubscriptionSucceeded = "pusher_internal:subscription_succeeded"
	EventSubscriptionError     = "pusher:subscription_error"
	EventMemberAdded           = "pusher_internal:member_added"
	EventMemberRemoved         = "pusher_internal:member_removed"
	EventSigninSuccess         = "pusher:signin_success"
	EventCacheMiss             = "pusher:cache_miss"
	EventWatchlistEvents       = "pusher_internal:watchlist_events"
	EventSubscriptionCount     = "pusher_internal:subscription_count"

	// V2-only frames, named here in the V1 spelling like the rest; EventName makes them
	// sockudo: / sockudo_internal:.
	EventPresenceUpdate = "pusher_internal:presence_update"
	EventTokenExpired   = "pusher:token_expired"
	EventAuthSuccess    = "pusher:auth_success"
	EventRewindComplete = "pusher:rewind_complete"
	EventResumeFailed   = "pusher:resume_failed"
	EventResumeSuccess  = "pusher:resume_success"
	EventChannelHistory = "pusher:channel_history"
)

// EventName returns a system event name (given in the V1 dialect) as version v spells it:
// V2 rewrites pusher: to sockudo: and pusher_internal: to sockudo_internal:. Non-system
// names are returned unchanged.
func (v Version) EventName(v1name string) string {
	if v != V2 {
		return v1name
	}
	switch {
	case strings.HasPrefix(v1name, PrefixPusherInternal):
		return PrefixSockudoInternal + v1name[len(PrefixPusherInternal):]
	case strings.HasPrefix(v1name, PrefixPusher):
		return PrefixSockudo + v1name[len(PrefixPusher):]
	}
	return v1name
}
