package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/storage/sqlite"
)

var backupNoUploads bool

func init() {
	backupCmd := &command{
		name:    "backup",
		args:    "[--config FILE] [--no-uploads] DEST",
		summary: "copy the database and data_dir's files while the server runs",
		help: `DEST is a new directory. It gets:
  starling.db   the SQLite database, a consistent copy made with VACUUM INTO
                while the server goes on running
  certs/        the self-signed certificates and keys generated per host
  acme/         the ACME account key and the certificates it obtained
  upload/       files shared with HTTP file upload ([modules.upload] dir),
                unless --no-uploads
It does not copy the configuration file, certificates and keys configured
by path ([tls]), nor the admin socket. To restore, stop the server and put
the files back: starling.db where [storage] dsn says (data_dir/starling.db
by default), the directories into data_dir and the upload dir.

With PostgreSQL ([storage] driver = "postgres") it copies nothing and
prints the pg_dump command to run instead.`,
		run: runBackup,
	}
	backupCmd.flags.BoolVar(&backupNoUploads, "no-uploads", false, "leave out the uploaded files")
	register(backupCmd)
}

func runBackup(ctx context.Context, inv *invocation) error {
	if err := inv.wantArgs(1, 1); err != nil {
		return err
	}
	cfg, err := inv.config()
	if err != nil {
		return err
	}
	dest := inv.args[0]
	if cfg.Storage.Driver == "postgres" {
		return errors.New(pgDumpAdvice(cfg.Storage.DSN, dest))
	}
	db := cfg.Storage.DSN
	if db == "" {
		db = filepath.Join(cfg.Server.DataDir, "starling.db")
	}
	if _, err := os.Stat(db); err != nil {
		return fmt.Errorf("no database to back up: %w", err)
	}
	if err := os.Mkdir(dest, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists: give a new directory", dest)
		}
		return err
	}
	if err := sqlite.Backup(ctx, db, filepath.Join(dest, "starling.db")); err != nil {
		return err
	}
	fmt.Printf("%s: the database %s\n", filepath.Join(dest, "starling.db"), db)
	dirs := []struct{ from, to string }{
		{filepath.Join(cfg.Server.DataDir, "certs"), "certs"},
		{filepath.Join(cfg.Server.DataDir, "acme"), "acme"},
	}
	if !backupNoUploads {
		dirs = append(dirs, struct{ from, to string }{uploadDir(cfg), "upload"})
	}
	for _, d := range dirs {
		n, err := copyTree(d.from, filepath.Join(dest, d.to))
		if errors.Is(err, fs.ErrNotExist) {
			continue // nothing of that kind
		}
		if err != nil {
			return err
		}
		fmt.Printf("%s: %d files from %s\n", filepath.Join(dest, d.to), n, d.from)
	}
	return nil
}

// uploadDir is where the upload module keeps files: its dir option,
// relative to the configuration file, or data_dir/upload.
func uploadDir(cfg *config.Config) string {
	// Only dir is of interest here; the table was checked whole when
	// the configuration was loaded, so the problems of the other keys,
	// which this struct does not have, are not problems.
	var opts struct {
		Dir string `toml:"dir"`
	}
	cfg.DecodeModule("upload", &opts, true)
	if opts.Dir != "" {
		return cfg.Path(opts.Dir)
	}
	return filepath.Join(cfg.Server.DataDir, "upload")
}

// pgDumpAdvice says how to back up a PostgreSQL database, with the
// command for the configured DSN.
func pgDumpAdvice(dsn, dest string) string {
	file := strings.TrimSuffix(dest, string(filepath.Separator)) + ".pgdump"
	return fmt.Sprintf(`the database is PostgreSQL: back it up with pg_dump, which takes a consistent copy while the server runs:
  pg_dump --format=custom --file=%s --dbname=%s
and restore it into an empty database with
  pg_restore --no-owner --dbname=%s %s
data_dir's certs/, acme/ and upload/ are plain files: copy them too`,
		shellQuote(file), shellQuote(dsn), shellQuote(dsn), shellQuote(file))
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@=,+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// copyTree copies the regular files under from into to (created, as its
// subdirectories, private), keeping their modes; it returns how many it
// copied. A file that goes away meanwhile is skipped.
func copyTree(from, to string) (int, error) {
	if _, err := os.Stat(from); err != nil {
		return 0, err
	}
	n := 0
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p != from {
			return nil
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		target := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		if !d.Type().IsRegular() {
			return nil // sockets, links
		}
		ok, err := copyFile(p, target)
		if ok {
			n++
		}
		return err
	})
	return n, err
}

func copyFile(from, to string) (bool, error) {
	in, err := os.Open(from)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return false, err
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm()&0o700|0o600)
	if err != nil {
		return false, err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return false, err
	}
	if err := out.Close(); err != nil {
		return false, err
	}
	return true, os.Chtimes(to, fi.ModTime(), fi.ModTime())
}
