package protocol

import (
	"strconv"
	"strings"
)

// MetaChannelPrefix starts a V2 metachannel name: "[meta]orders" receives the lifecycle
// events of channel "orders" (sockudo_internal:channel_occupied, subscription_count,
// channel_vacated, member_added, member_removed).
const MetaChannelPrefix = "[meta]"

// MetaChannelFor returns the metachannel of a channel.
func MetaChannelFor(channel string) string { return MetaChannelPrefix + channel }

// MetaChannelBase returns the channel a "[meta]<channel>" name watches.
func MetaChannelBase(name string) (string, bool) {
	if !strings.HasPrefix(name, MetaChannelPrefix) || len(name) == len(MetaChannelPrefix) {
		return "", false
	}
	return name[len(MetaChannelPrefix):], true
}

// IsWildcard reports whether a subscribe names a wildcard pattern (it holds a '*' and is
// not a user channel), as Sockudo decides it.
func IsWildcard(name string) bool {
	return strings.IndexByte(name, '*') >= 0 && !strings.HasPrefix(name, UserChannelPrefix)
}

// ValidateWildcard checks a V2 wildcard subscription pattern as Sockudo does: exactly one
// '*', no user-limited '#', not a private, presence or encrypted prefix, only the characters
// A-Z a-z 0-9 - _ = @ . : and '*', at most maxLen bytes (0 means 200). Errors carry 4300.
func ValidateWildcard(pattern string, maxLen int) *Error {
	if maxLen <= 0 {
		maxLen = DefaultMaxChannelNameLength
	}
	q := Truncate(pattern, 64)
	switch {
	case len(pattern) > maxLen:
		return Errorf(CodeChannelError, "Invalid wildcard subscription: longer than %d bytes", maxLen)
	case strings.Count(pattern, "*") != 1:
		return Errorf(CodeChannelError, "Wildcard subscription %q must contain exactly one '*'", q)
	case strings.IndexByte(pattern, '#') >= 0:
		return Errorf(CodeChannelError, "Wildcard subscription %q cannot use user-limited syntax", q)
	case strings.HasPrefix(pattern, "private-"), strings.HasPrefix(pattern, "presence-"):
		return Errorf(CodeChannelError, "Wildcard subscription %q is only supported for public channels", q)
	}
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '_', c == '=', c == '@', c == '.', c == ':', c == '*':
		default:
			return Errorf(CodeChannelError, "Wildcard subscription %q contains invalid character %q", q, c)
		}
	}
	return nil
}

// SplitWildcard splits a valid pattern at its '*' into the prefix and suffix a matching
// channel name must have.
func SplitWildcard(pattern string) (prefix, suffix string) {
	i := strings.IndexByte(pattern, '*')
	if i < 0 {
		return pattern, ""
	}
	return pattern[:i], pattern[i+1:]
}

// WildcardMatches reports whether channel matches a one-'*' pattern: it starts with the part
// before the '*' and ends with the part after it (the '*' may match nothing), and it is a
// public channel — a wildcard never delivers private, presence, encrypted or user channels,
// whatever prefix the pattern has ("*" or "pri*" included), nor metachannels.
func WildcardMatches(pattern, channel string) bool {
	p, s := SplitWildcard(pattern)
	return len(channel) >= len(p)+len(s) && strings.HasPrefix(channel, p) && strings.HasSuffix(channel, s) &&
		WildcardDeliverable(channel)
}

// WildcardDeliverable reports whether a channel's messages may reach wildcard subscribers:
// public channels (cache- ones included) only.
func WildcardDeliverable(channel string) bool {
	return Classify(channel).Type == Public && !strings.HasPrefix(channel, MetaChannelPrefix) &&
		strings.IndexByte(channel, '*') < 0
}

// Metachannel event names (sent with the sockudo_internal: prefix).
const (
	MetaChannelOccupied   = "sockudo_internal:channel_occupied"
	MetaSubscriptionCount = "sockudo_internal:subscription_count"
	MetaChannelVacated    = "sockudo_internal:channel_vacated"
	MetaMemberAdded       = "sockudo_internal:member_added"
	MetaMemberRemoved     = "sockudo_internal:member_removed"
	MetaPresenceUpdate    = "sockudo_internal:presence_update"
)

// MetaCountFrame is a metachannel's channel_occupied, subscription_count or channel_vacated
// frame for channel, as Sockudo sends it: on "[meta]<channel>", data an object (not a
// string) {"channel","subscription_count"}, no message_id.
func MetaCountFrame(event, channel string, count int) []byte {
	d := append(make([]byte, 0, len(channel)+48), `{"channel":`...)
	d = AppendJSONString(d, channel)
	d = append(d, `,"subscription_count":`...)
	d = strconv.AppendInt(d, int64(count), 10)
	d = append(d, '}')
	return OutFrame{Event: event, Channel: MetaChannelFor(channel), Data: d}.Bytes()
}

// MetaMemberFrame is a metachannel's member_added, member_removed or presence_update frame
// for channel:
// data {"channel","user_id"}, an object.
func MetaMemberFrame(event, channel, userID string) []byte {
	d := append(make([]byte, 0, len(channel)+len(userID)+32), `{"channel":`...)
	d = AppendJSONString(d, channel)
	d = append(d, `,"user_id":`...)
	d = AppendJSONString(d, userID)
	d = append(d, '}')
	return OutFrame{Event: event, Channel: MetaChannelFor(channel), Data: d}.Bytes()
}
