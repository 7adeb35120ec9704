package protocol

import "strings"

// ChannelType is the access class of a channel, decided by its name prefix.
type ChannelType uint8

const (
	// Public channels need no authorization.
	Public ChannelType = iota
	// Private channels ("private-") need an HMAC of socket_id:channel.
	Private
	// Presence channels ("presence-") need an HMAC of socket_id:channel:channel_data and track members.
	Presence
	// Encrypted channels ("private-encrypted-") are private channels whose payloads the
	// publisher encrypts end to end; the server only relays them and refuses client events.
	Encrypted
	// User channels ("#server-to-user-{id}") carry events for one signed-in user.
	User
)

// String names the channel type as it appears in logs.
func (t ChannelType) String() string {
	switch t {
	case Private:
		return "private"
	case Presence:
		return "presence"
	case Encrypted:
		return "private-encrypted"
	case User:
		return "user"
	}
	return "public"
}

// UserChannelPrefix is the name prefix of the per-user channel of Pusher user authentication.
const UserChannelPrefix = "#server-to-user-"

// ChannelClass is what a channel name says about the channel.
type ChannelClass struct {
	Type ChannelType
	// Cache is true for cache channels (cache-, private-cache-, private-encrypted-cache-,
	// presence-cache-): the last published event is replayed to new subscribers.
	Cache bool
}

// NeedsAuth reports whether subscribing requires an HMAC signature.
func (c ChannelClass) NeedsAuth() bool {
	return c.Type == Private || c.Type == Presence || c.Type == Encrypted
}

// AllowsClientEvents reports whether client- events may be triggered on the channel:
// private and presence channels only, never encrypted, cache or user channels.
func (c ChannelClass) AllowsClientEvents() bool {
	return (c.Type == Private || c.Type == Presence) && !c.Cache
}

// Classify derives a channel's class from its name by exact prefix comparison, so that
// "private-encrypted-x" is encrypted and "private-cache-x" is a private cache channel.
func Classify(name string) ChannelClass {
	switch {
	case strings.HasPrefix(name, "private-encrypted-cache-"):
		return ChannelClass{Type: Encrypted, Cache: true}
	case strings.HasPrefix(name, "private-encrypted-"):
		return ChannelClass{Type: Encrypted}
	case strings.HasPrefix(name, "private-cache-"):
		return ChannelClass{Type: Private, Cache: true}
	case strings.HasPrefix(name, "private-"):
		return ChannelClass{Type: Private}
	case strings.HasPrefix(name, "presence-cache-"):
		return ChannelClass{Type: Presence, Cache: true}
	case strings.HasPrefix(name, "presence-"):
		return ChannelClass{Type: Presence}
	case strings.HasPrefix(name, "cache-"):
		return ChannelClass{Type: Public, Cache: true}
	case strings.HasPrefix(name, UserChannelPrefix):
		return ChannelClass{Type: User}
	}
	return ChannelClass{Type: Public}
}

// UserChannelID returns the user id of a "#server-to-user-{id}" channel name.
func UserChannelID(name string) (string, bool) {
	if !strings.HasPrefix(name, UserChannelPrefix) {
		return "", false
	}
	return name[len(UserChannelPrefix):], true
}

// DefaultMaxChannelNameLength is the default limit on a channel name, in bytes.
const DefaultMaxChannelNameLength = 200

// ValidateChannelName checks a channel name: non-empty, at most maxLen bytes (0 means the
// default 200), made of Pusher's characters A-Z a-z 0-9 _ - = @ , . ; plus ':' for room keys
// such as "order:ord_123". '#' is allowed only as the "#server-to-user-" prefix.
// The error carries code 4300.
func ValidateChannelName(name string, maxLen int) *Error {
	if maxLen <= 0 {
		maxLen = DefaultMaxChannelNameLength
	}
	if name == "" {
		return &Error{Code: CodeChannelError, Message: "Invalid channel name: empty"}
	}
	if len(name) > maxLen {
		return Errorf(CodeChannelError, "Invalid channel name: longer than %d bytes", maxLen)
	}
	body := name
	if id, ok := UserChannelID(name); ok {
		if id == "" {
			return &Error{Code: CodeChannelError, Message: "Invalid channel name: missing user id"}
		}
		body = id
	}
	for i := 0; i < len(body); i++ {
		if !isChannelNameByte(body[i]) {
			return Errorf(CodeChannelError, "Invalid channel name %q: character %q is not allowed", Truncate(name, 64), body[i])
		}
	}
	return nil
}

func isChannelNameByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '_', '-', '=', '@', ',', '.', ';', ':':
		return true
	}
	return false
}

// DefaultMaxEventNameLength is the default limit on an event name, in bytes.
const DefaultMaxEventNameLength = 200

// ValidateEventName checks a published event name: non-empty, at most maxLen bytes (0 means
// 200) and not in a reserved system namespace.
func ValidateEventName(name string, maxLen int) *Error {
	if maxLen <= 0 {
		maxLen = DefaultMaxEventNameLength
	}
	switch {
	case name == "":
		return &Error{Code: CodeGeneric, Message: "Event name is required"}
	case len(name) > maxLen:
		return Errorf(CodeGeneric, "Event name is longer than %d bytes", maxLen)
	case IsReservedEventName(name):
		return Errorf(CodeGeneric, "Event name %q uses a reserved prefix", Truncate(name, 64))
	}
	return nil
}

// Truncate shortens s to n bytes plus "..." for quoting client input in error messages.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
