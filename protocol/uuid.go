package protocol

import (
	"crypto/rand"
	"encoding/binary"
	"math"
	"sync"
)

// NewUUID returns a random (version 4) UUID in its canonical 36-character form, as used for
// message_id and stream_id.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(&b)
}

// ValidUUID reports whether s is a canonical lower-case UUID of version 4.
func ValidUUID(s string) bool { return validUUID(s, '4') }

// ValidMessageUUID reports whether s is a canonical lower-case UUID of version 8, the form
// of the message_ids MessageIDs issues.
func ValidMessageUUID(s string) bool { return validUUID(s, '8') }

func validUUID(s string, version byte) bool {
	if len(s) != 36 || s[14] != version {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return s[19] == '8' || s[19] == '9' || s[19] == 'a' || s[19] == 'b'
}

// MessageIDs issues server-side message_ids that are UUIDs (version 8, RFC 9562) made of a
// random 90-bit prefix and a 32-bit counter, one (prefix, counter) per slot; a caller maps
// each channel to one slot. Consecutive ids of a channel then differ only in their last
// hex digits, so a delta between two frames of the channel carries a byte or two for the
// id instead of 36 (issue 19).
//
// Uniqueness, across slots, nodes and restarts: within a slot the counter only grows
// (under the slot's lock) and a fresh prefix is drawn from crypto/rand before it would
// wrap; every prefix is drawn from crypto/rand when the slot is first used in a process.
// Two ids can only be equal if two draws of 90 random bits are, which for even 10^9
// prefixes drawn over a deployment's life has a probability below 10^-9 (birthday bound
// P²/2^91) — and ids remain opaque strings to clients, which only compare them.
// The zero value is ready to use.
type MessageIDs struct {
	slots [MessageIDSlots]idSlot
}

// MessageIDSlots is the number of id sequences of a MessageIDs.
const MessageIDSlots = 256

type idSlot struct {
	mu     sync.Mutex
	prefix [12]byte
	n      uint32
	ok     bool
}

// Next returns the next id of the slot key%MessageIDSlots.
func (g *MessageIDs) Next(key uint64) string {
	s := &g.slots[key%MessageIDSlots]
	var b [16]byte
	s.mu.Lock()
	if !s.ok || s.n == math.MaxUint32 {
		_, _ = rand.Read(s.prefix[:])
		s.prefix[6] = s.prefix[6]&0x0f | 0x80 // version 8
		s.prefix[8] = s.prefix[8]&0x3f | 0x80 // RFC 9562 variant
		s.n, s.ok = 0, true
	} else {
		s.n++
	}
	copy(b[:12], s.prefix[:])
	binary.BigEndian.PutUint32(b[12:], s.n)
	s.mu.Unlock()
	return formatUUID(&b)
}

func formatUUID(b *[16]byte) string {
	var out [36]byte
	j := 0
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = hexDigits[c>>4], hexDigits[c&0xf]
		j += 2
	}
	return string(out[:])
}
