package history_test

import (
	"os"
	"testing"

	"github.com/pushwire/pushwire/internal/testkit"
)

// TestMain stops any service the tests started for themselves (a throwaway Postgres).
func TestMain(m *testing.M) {
	code := m.Run()
	testkit.StopServices()
	os.Exit(code)
}
