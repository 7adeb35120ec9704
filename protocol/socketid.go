package protocol

import (
	"math/rand/v2"
	"strconv"
)

// NewSocketID returns a fresh socket id: two decimal integers drawn uniformly from
// 0..=10_000_000_000 and joined by a dot, the shape every Pusher server SDK requires.
func NewSocketID() string {
	const max = 10_000_000_000
	b := make([]byte, 0, 23)
	b = strconv.AppendUint(b, rand.Uint64N(max+1), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, rand.Uint64N(max+1), 10)
	return string(b)
}

// ValidSocketID reports whether s has the shape ^\d+\.\d+$ (each part at most 20 digits).
func ValidSocketID(s string) bool {
	dot := -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.' && dot < 0:
			dot = i
		case c < '0' || c > '9':
			return false
		}
	}
	return dot > 0 && dot < len(s)-1 && dot <= 20 && len(s)-dot-1 <= 20
}
