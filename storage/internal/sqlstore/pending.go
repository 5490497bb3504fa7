package sqlstore

import (
	"context"
	"fmt"
)

// Pending returns the migrations Migrate would apply, in its order, as
// "aggregate/NNNN_what", reading only: it creates no table and records
// nothing, so that `starling check` can ask about a database without
// changing it. A database without the schema tables (a new one) lacks
// every migration. Like Migrate, it fails if the database records a
// migration this build lacks.
func (s *Store) Pending(ctx context.Context) ([]string, error) {
	names, ms, err := aggregateMigrations(s.d.Name())
	if err != nil {
		return nil, err
	}
	c := conn{s.core, s.r}
	tables, err := s.schemaTables(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("read the schema tables: %w", err)
	}
	done := make(map[string]map[int]bool)
	if tables["schema_migrations"] {
		// What Migrate's readLegacy would record, unless it did already.
		versions, err := legacyVersions(ctx, c)
		if err != nil {
			return nil, err
		}
		for _, v := range versions {
			for _, name := range legacy[v] {
				markDone(done, name, 1)
			}
		}
	}
	if tables["schema_versions"] {
		if err := readVersions(ctx, c, ms, done); err != nil {
			return nil, err
		}
	}
	var pending []string
	for _, name := range names {
		for _, m := range ms[name] {
			if !done[name][m.Version] {
				pending = append(pending, name+"/"+m.Name)
			}
		}
	}
	return pending, nil
}

// schemaTables reports which of the tables that record migrations exist,
// without creating them.
func (s *Store) schemaTables(ctx context.Context, c conn) (map[string]bool, error) {
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('schema_migrations', 'schema_versions')`
	if s.d.Name() == "postgres" { // the first schema of search_path, where Migrate creates them
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name IN ('schema_migrations', 'schema_versions')`
	}
	rows, err := c.query(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	tables := make(map[string]bool)
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		tables[name] = true
	}
	return tables, rows.Err()
}
