//go:build race

package testkit

// RaceEnabled reports whether the tests were built with the race detector (which changes
// allocation counts and drops sync.Pool items at random).
const RaceEnabled = true
