// Package pgmigrate applies a package's embedded SQL migrations to Postgres once, in
// version order, under an advisory lock, recording them in a table of its own.
package pgmigrate

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Set is one package's migrations: files named NNNN_name.sql in Dir of FS, recorded in
// Table, applied under advisory lock Lock.
type Set struct {
	FS    fs.FS
	Dir   string
	Table string
	Lock  int64
}

// Apply applies, in version order, the migrations of s not yet recorded, each in its own
// transaction, on conn (which holds the advisory lock meanwhile), and returns the names it
// applied.
func Apply(ctx context.Context, conn *pgx.Conn, s Set) ([]string, error) {
	type migration struct {
		version int
		path    string
	}
	files, err := fs.Glob(s.FS, s.Dir+"/*.sql")
	if err != nil {
		return nil, err
	}
	var todo []migration
	seen := map[int]string{}
	for _, f := range files {
		name := strings.TrimPrefix(f, s.Dir+"/")
		v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name does not start with a version number", name)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", other, name, v)
		}
		seen[v] = name
		todo = append(todo, migration{v, f})
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].version < todo[j].version })
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", s.Lock); err != nil {
		return nil, err
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", s.Lock) }()
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+s.Table+" (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"); err != nil {
		return nil, err
	}
	applied := map[int]bool{}
	rows, err := conn.Query(ctx, "SELECT version FROM "+s.Table)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, err
		}
		applied[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var done []string
	for _, m := range todo {
		if applied[m.version] {
			continue
		}
		sql, err := fs.ReadFile(s.FS, m.path)
		if err != nil {
			return done, err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO "+s.Table+" (version) VALUES ($1)", m.version)
			return err
		})
		if err != nil {
			return done, fmt.Errorf("migration %s: %w", m.path, err)
		}
		done = append(done, m.path)
	}
	return done, nil
}
