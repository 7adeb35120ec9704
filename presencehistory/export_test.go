package presencehistory

import "time"

// SetRetryWaits replaces the waits between append retries for a test and returns the
// function restoring them.
func SetRetryWaits(w []time.Duration) func() {
	old := retryWaits
	retryWaits = w
	return func() { retryWaits = old }
}
