package sdkcompat

import (
	"testing"

	"github.com/pushwire/pushwire/internal/testkit"
)

// TestMain stops any service the tests started for themselves and removes the server binary
// they built (testkit.Cleanup).
func TestMain(m *testing.M) { testkit.Main(m) }
