package check

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/starling-xmpp/starling/storage/postgres"
	"github.com/starling-xmpp/starling/storage/sqlite"
)

// Database checks that the database can be reached and has every
// migration applied, without applying any.
func Database(ctx context.Context, opts Options, r *Report) {
	cfg := opts.Config
	dataDir(cfg.Server.DataDir, r)
	ctx, cancel := context.WithTimeout(ctx, 2*opts.timeout())
	defer cancel()
	var (
		pending []string
		err     error
		what    string
	)
	switch cfg.Storage.Driver {
	case "postgres":
		what = "PostgreSQL"
		pending, err = postgres.Pending(ctx, cfg.Storage.DSN)
		if err != nil {
			r.add(AreaDatabase, Problem, "check [storage] dsn, that PostgreSQL runs and accepts this role (README, \"Use PostgreSQL\")",
				"PostgreSQL cannot be reached: %v", err)
			return
		}
	default:
		path := cfg.Storage.DSN
		if path == "" {
			path = filepath.Join(cfg.Server.DataDir, "starling.db")
		}
		what = path
		if _, serr := os.Stat(path); errors.Is(serr, fs.ErrNotExist) {
			if dir := existingParent(filepath.Dir(path)); !writable(dir) {
				r.add(AreaDatabase, Problem, "create "+filepath.Dir(path)+" for the server's user, or run the check as that user",
					"no database at %s yet, and %s cannot be written by this user", path, dir)
				return
			}
			r.ok(AreaDatabase, "no database at %s yet: the server creates it at its first start", path)
			return
		}
		pending, err = sqlite.Pending(ctx, path)
		if err != nil {
			fix := "run the check as the server's user; restore the file from a backup if it is damaged"
			if strings.Contains(err.Error(), "newer than this build") {
				fix = "run the newer starling that upgraded this database, or restore the backup made before"
			}
			r.add(AreaDatabase, Problem, fix, "%v", err)
			return
		}
	}
	if len(pending) > 0 {
		r.add(AreaDatabase, Warning, "back the database up (starling backup, or pg_dump): the server applies them at its next start, forward only",
			"%s lacks %d migration(s): %s", what, len(pending), shortList(pending))
		return
	}
	r.ok(AreaDatabase, "%s is reachable, every migration applied", what)
}

func shortList(s []string) string {
	if len(s) > 5 {
		return strings.Join(s[:5], ", ") + fmt.Sprintf(" and %d more", len(s)-5)
	}
	return strings.Join(s, ", ")
}

// existingParent is dir or its nearest ancestor that exists.
func existingParent(dir string) string {
	for {
		if _, err := os.Stat(dir); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir
		}
		dir = parent
	}
}

// writable reports whether this user may create files in dir.
func writable(dir string) bool {
	f, err := os.CreateTemp(dir, ".starling-check-*")
	if err != nil {
		return false
	}
	f.Close()
	os.Remove(f.Name())
	return true
}

// dataDir checks that the server can keep its state in dir: generated
// certificates, the SQLite database, uploads, the admin socket.
func dataDir(dir string, r *Report) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if parent := existingParent(dir); !writable(parent) {
			r.add(AreaDatabase, Problem, "create "+dir+" owned by the server's user (StateDirectory= in the systemd unit does), or run the check as that user",
				"data_dir %s does not exist, and %s cannot be written by this user", dir, parent)
			return
		}
		r.ok(AreaDatabase, "data_dir %s does not exist yet: the server creates it", dir)
	case err != nil:
		r.add(AreaDatabase, Problem, "check server.data_dir, and run the check as the server's user", "data_dir %s: %v", dir, err)
	case !fi.IsDir():
		r.add(AreaDatabase, Problem, "point server.data_dir at a directory", "data_dir %s is not a directory", dir)
	case !writable(dir):
		r.add(AreaDatabase, Problem, "chown -R the directory to the server's user, or run the check as that user",
			"data_dir %s cannot be written by this user", dir)
	default:
		r.ok(AreaDatabase, "data_dir %s can be written", dir)
	}
}
