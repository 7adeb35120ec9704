package protocol

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxMessageIDLen is the longest client-chosen message_id of an HTTP publish: Sockudo's
// idempotency key limit (max_key_length), since the id is also the publish's idempotent
// create key.
const MaxMessageIDLen = 128

// ValidateMessageID checks a client-chosen message_id: 1 to MaxMessageIDLen bytes of visible
// ASCII (0x21-0x7E), so the id reads the same in a JSON frame, a log line, a URL and every
// client's de-duplication map: UUIDs, ULIDs and ids like "order-42:v3" pass; spaces, control
// characters and non-ASCII do not. The error says which rule failed and where.
func ValidateMessageID(id string) error {
	if id == "" {
		return fmt.Errorf("message_id must not be empty")
	}
	if len(id) > MaxMessageIDLen {
		return fmt.Errorf("message_id is %d bytes, the limit is %d", len(id), MaxMessageIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("message_id has %s at byte %d: only visible ASCII characters (! to ~) are allowed", describeByte(c), i)
		}
	}
	return nil
}

func describeByte(c byte) string {
	switch {
	case c == ' ':
		return "a space"
	case c < 0x20 || c == 0x7f:
		return fmt.Sprintf("control character 0x%02x", c)
	default:
		return fmt.Sprintf("non-ASCII byte 0x%02x", c)
	}
}

// RollupWindows are the append_rollup_window values a V2 client may ask for (ws-protocol
// §1.1), in milliseconds; 0 turns rollup off.
var RollupWindows = [...]time.Duration{0, 20 * time.Millisecond, 40 * time.Millisecond, 100 * time.Millisecond, 500 * time.Millisecond}

// ParseRollupWindow reads an append_rollup_window query value: a decimal number of
// milliseconds that is one of RollupWindows (leading zeros allowed, any number of them, as
// Sockudo's unsigned integer parse allows them).
func ParseRollupWindow(s string) (time.Duration, error) {
	bad := fmt.Errorf("append_rollup_window must be one of 0, 20, 40, 100, 500 (milliseconds), got %q", Truncate(s, 32))
	if s == "" {
		return 0, bad
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, bad
		}
	}
	digits := strings.TrimLeft(s, "0")
	if len(digits) > 3 {
		return 0, bad // above every window (and no overflow to worry about)
	}
	ms, _ := strconv.ParseUint("0"+digits, 10, 64)
	for _, w := range RollupWindows {
		if uint64(w/time.Millisecond) == ms {
			return w, nil
		}
	}
	return 0, bad
}
