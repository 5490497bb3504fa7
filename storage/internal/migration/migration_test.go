package migration

import (
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	ok := fstest.MapFS{
		"m/0001_a.sql": {Data: []byte("CREATE TABLE a (x INT);")},
		"m/0002_b.sql": {Data: []byte("CREATE TABLE b (x INT);")},
	}
	ms, err := Load(ok, "m")
	if err != nil || len(ms) != 2 || ms[0].Version != 1 || ms[1].Version != 2 || ms[1].SQL != "CREATE TABLE b (x INT);" || ms[1].Name != "0002_b" {
		t.Fatalf("Load = %+v, %v", ms, err)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"gap":      {"m/0001_a.sql": {}, "m/0003_c.sql": {}},
		"no start": {"m/0002_b.sql": {}},
		"bad name": {"m/0001_a.sql": {}, "m/two_b.sql": {}},
	} {
		if _, err := Load(fsys, "m"); err == nil {
			t.Errorf("%s: Load accepted it", name)
		}
	}
}
