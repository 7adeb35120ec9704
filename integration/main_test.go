package integration

import (
	"os"
	"testing"

	"github.com/pushwire/pushwire/internal/testkit"
)

// TestMain stops any service the tests started for themselves (a throwaway Postgres) and
// removes the server binary they built.
func TestMain(m *testing.M) {
	code := m.Run()
	testkit.Cleanup()
	os.Exit(code)
}
