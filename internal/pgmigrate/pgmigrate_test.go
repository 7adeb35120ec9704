package pgmigrate_test

import (
	"context"
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/pushwire/pushwire/internal/pgmigrate"
	"github.com/pushwire/pushwire/internal/testkit"
)

// A gap in the versions is fine, and a version that appears later (another branch's
// migration merged after this one ran) is applied then: every unrecorded version runs
// once, in version order.
func TestApplyGapThenLateVersion(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testkit.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	files := fstest.MapFS{
		"m/0001_a.sql": {Data: []byte("CREATE TABLE t1 (x int)")},
		"m/0002_b.sql": {Data: []byte("CREATE TABLE t2 (x int)")},
		"m/0005_e.sql": {Data: []byte("CREATE TABLE t5 (x int)")},
	}
	set := pgmigrate.Set{FS: files, Dir: "m", Table: "test_migrations", Lock: 4242}
	done, err := pgmigrate.Apply(ctx, conn, set)
	if err != nil || fmt.Sprint(done) != "[m/0001_a.sql m/0002_b.sql m/0005_e.sql]" {
		t.Fatalf("first run: %v, %v", done, err)
	}
	files["m/0004_d.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE t4 (x int)")}
	done, err = pgmigrate.Apply(ctx, conn, set)
	if err != nil || fmt.Sprint(done) != "[m/0004_d.sql]" {
		t.Fatalf("with version 4 added later: %v, %v", done, err)
	}
	if done, err = pgmigrate.Apply(ctx, conn, set); err != nil || len(done) != 0 {
		t.Fatalf("third run: %v, %v", done, err)
	}
}
