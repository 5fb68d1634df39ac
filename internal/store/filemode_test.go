package store_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/wabsync/wabsync/internal/store"
)

// TestFileModes: the database, its -wal and -shm, and the sandbox's mail
// database are readable by their owner only, whatever the umask, and files
// an older version left 0644 are narrowed.
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	for _, tc := range []struct {
		name     string
		existing bool
	}{{"New", false}, {"Existing0644", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "wabsync.db")
			if tc.existing {
				for _, p := range []string{path, path + "-wal", path + "-shm"} {
					if err := os.WriteFile(p, nil, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			ctx := context.Background()
			db, err := store.Open(ctx, "sqlite://"+path, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if err := db.OpenMailbox(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Setting(ctx, "x", func() string { return "secret" }); err != nil {
				t.Fatal(err)
			}
			mail := filepath.Join(dir, "wabsync-sandbox.db")
			for _, p := range []string{path, path + "-wal", path + "-shm", mail, mail + "-wal", mail + "-shm"} {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if m := fi.Mode().Perm(); m != 0o600 {
					t.Errorf("%s: mode %o, want 600", filepath.Base(p), m)
				}
			}
		})
	}
}
