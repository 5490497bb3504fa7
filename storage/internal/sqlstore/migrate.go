package sqlstore

// Schema migrations, owned per aggregate: migrations/<aggregate>/<dialect>/
// NNNN_what.sql, numbered 1..n within the aggregate, applied in order and
// never edited once released. A new aggregate adds its directory and
// nothing else. Applied migrations are recorded in schema_versions
// (aggregate, version).

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"slices"

	"github.com/starling-xmpp/starling/storage/internal/migration"
)

//go:embed migrations
var migrationFS embed.FS

// The single sequence of migrations the stores used before migrations were
// per aggregate, still recorded in schema_migrations: version 1 is the
// accounts aggregate's 0001, version 2 the IM aggregates' 0001. Once read,
// legacyDone is recorded there beside them, on a new database too, so
// that builds from before refuse the database as newer than they know
// instead of re-creating tables.
var legacy = map[int][]string{
	1: {"accounts"},
	2: {"roster", "offline", "blocklist", "documents", "lastactivity"},
}

const legacyDone = 3

// aggregateMigrations returns each aggregate's migrations in the dialect,
// in the order they are applied: accounts first (the others refer to
// it), then the others by name.
func aggregateMigrations(dialect string) (names []string, ms map[string][]migration.Migration, err error) {
	dirs, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, nil, err
	}
	ms = make(map[string][]migration.Migration)
	for _, d := range dirs {
		name := d.Name()
		m, err := migration.Load(migrationFS, "migrations/"+name+"/"+dialect)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(m) == 0 {
			return nil, nil, fmt.Errorf("%s: no migrations for %s", name, dialect)
		}
		names = append(names, name)
		ms[name] = m
	}
	slices.SortFunc(names, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == "accounts":
			return -1
		case b == "accounts":
			return 1
		case a < b:
			return -1
		}
		return 1
	})
	return names, ms, nil
}

// Migrate applies every pending migration, each in its own transaction,
// which the dialect makes exclusive among concurrent starters. It fails if
// the database records a migration this build lacks.
func (s *Store) Migrate(ctx context.Context) error {
	names, ms, err := aggregateMigrations(s.d.Name())
	if err != nil {
		return err
	}
	for {
		applied, err := s.migrateStep(ctx, names, ms)
		if err != nil || !applied {
			return err
		}
	}
}

// migrateStep applies the first pending migration and reports whether
// there was one.
func (s *Store) migrateStep(ctx context.Context, names []string, ms map[string][]migration.Migration) (applied bool, err error) {
	tx, err := s.w.Begin(ctx, false)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	c := conn{s.core, tx}
	if err := s.d.LockMigrations(ctx, tx); err != nil {
		return false, err
	}
	for _, ddl := range []string{
		`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)`,
		`CREATE TABLE IF NOT EXISTS schema_versions (aggregate TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (aggregate, version))`,
	} {
		if _, err := c.exec(ctx, ddl); err != nil {
			return false, fmt.Errorf("create schema tables: %w", err)
		}
	}
	if err := s.readLegacy(ctx, c); err != nil {
		return false, err
	}

	done := make(map[string]map[int]bool)
	if err := readVersions(ctx, c, ms, done); err != nil {
		return false, err
	}

	for _, name := range names {
		for _, m := range ms[name] {
			if done[name][m.Version] {
				continue
			}
			// The file's text as it is: no parameters to rewrite.
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return false, fmt.Errorf("%s migration %d: %w", name, m.Version, err)
			}
			if _, err := c.exec(ctx, `INSERT INTO schema_versions (aggregate, version) VALUES (?, ?)`, name, m.Version); err != nil {
				return false, fmt.Errorf("%s migration %d: %w", name, m.Version, err)
			}
			if err := tx.Commit(); err != nil {
				return false, fmt.Errorf("%s migration %d: %w", name, m.Version, err)
			}
			return true, nil
		}
	}
	return false, tx.Commit()
}

// readLegacy records the migrations schema_migrations names in
// schema_versions, once, and then legacyDone in schema_migrations.
func (s *Store) readLegacy(ctx context.Context, c conn) error {
	versions, err := legacyVersions(ctx, c)
	if err != nil {
		return err
	}
	if slices.Contains(versions, legacyDone) {
		return nil
	}
	for _, v := range versions {
		for _, name := range legacy[v] {
			if _, err := c.exec(ctx, `INSERT INTO schema_versions (aggregate, version) VALUES (?, 1)`, name); err != nil {
				return fmt.Errorf("record schema version %d as %s's 1: %w", v, name, err)
			}
		}
	}
	if _, err := c.exec(ctx, `INSERT INTO schema_migrations (version) VALUES (?)`, legacyDone); err != nil {
		return fmt.Errorf("record schema version %d: %w", legacyDone, err)
	}
	return nil
}

// legacyVersions reads the versions the single schema of earlier builds
// recorded in schema_migrations, each of which must be one this build
// knows.
func legacyVersions(ctx context.Context, c conn) ([]int, error) {
	rows, err := c.query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	var versions []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, err
		}
		versions = append(versions, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, v := range versions {
		if v < 1 || v > legacyDone {
			return nil, fmt.Errorf("database has schema version %d, newer than this build of Starling knows (1..%d)", v, legacyDone)
		}
	}
	return versions, nil
}

// readVersions adds the migrations schema_versions records to done (by
// aggregate, then version), each of which must be one of ms.
func readVersions(ctx context.Context, c conn, ms map[string][]migration.Migration, done map[string]map[int]bool) error {
	rows, err := c.query(ctx, `SELECT aggregate, version FROM schema_versions`)
	if err != nil {
		return fmt.Errorf("read schema_versions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			name string
			v    int
		)
		if err := rows.Scan(&name, &v); err != nil {
			return err
		}
		if v < 1 || v > len(ms[name]) {
			if len(ms[name]) == 0 {
				return fmt.Errorf("database has schema version %d of %s, an aggregate this build of Starling does not know", v, name)
			}
			return fmt.Errorf("database has %s schema version %d, newer than this build of Starling knows (1..%d)", name, v, len(ms[name]))
		}
		markDone(done, name, v)
	}
	return rows.Err()
}

// markDone records version v of aggregate name in done.
func markDone(done map[string]map[int]bool, name string, v int) {
	if done[name] == nil {
		done[name] = make(map[int]bool)
	}
	done[name][v] = true
}

// Latest returns the newest migration of each aggregate in the dialect, as
// an up-to-date database records them.
func Latest(dialect string) (map[string]int, error) {
	_, ms, err := aggregateMigrations(dialect)
	if err != nil {
		return nil, err
	}
	latest := make(map[string]int)
	for name, m := range ms {
		latest[name] = len(m)
	}
	return latest, nil
}
