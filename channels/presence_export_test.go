package channels

import "time"

// SetPresenceRetryWaits replaces the waits between presence append retries for a test and
// returns the function restoring them.
func SetPresenceRetryWaits(w []time.Duration) func() {
	old := presenceRetryWaits
	presenceRetryWaits = w
	return func() { presenceRetryWaits = old }
}
