package push_test

import (
	"context"
	"testing"

	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/push"
	"github.com/pushwire/pushwire/push/pushtest"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestMemoryStore(t *testing.T) {
	pushtest.Run(t, func(*testing.T) push.Store { return push.NewMemory() })
}

func TestPostgresStore(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Postgres")
	}
	pushtest.Run(t, func(t *testing.T) push.Store {
		pg, err := push.NewPostgres(context.Background(), testkit.PostgresURL(t), push.PostgresOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pg.Close)
		return pg
	})
}
