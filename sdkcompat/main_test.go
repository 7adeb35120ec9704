package sdkcompat

import (
	"os"
	"testing"

	"github.com/pushwire/pushwire/internal/testkit"
)

// TestMain removes the server binary the tests built (and stops any service they started).
func TestMain(m *testing.M) {
	code := m.Run()
	testkit.Cleanup()
	os.Exit(code)
}
