package main

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wabsync/wabsync/client"
	"github.com/wabsync/wabsync/internal/testutil"
)

// createSession creates a session whose metadata holds size bytes: a write
// that needs room.
func (ts *testServer) createBigSession(i, size int) rawResponse {
	ts.t.Helper()
	return ts.Do("POST", "/api/v1/sessions", testAdminToken, map[string]any{"name": fmt.Sprintf("s%d", i), "engine": "sandbox",
		"metadata": map[string]any{"pad": strings.Repeat("x", size)}})
}

// mustUnavailable fails unless r is 503 UNAVAILABLE with a Retry-After and
// a body that quotes none of leaks.
func mustUnavailable(tb testing.TB, what string, r rawResponse, leaks ...string) {
	tb.Helper()
	if r.Status != 503 || r.Err(tb).Code != "UNAVAILABLE" || r.Header.Get("Retry-After") == "" {
		tb.Fatalf("%s: %d (Retry-After %q) %s, want 503 UNAVAILABLE with Retry-After", what, r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	for _, leak := range leaks {
		if strings.Contains(string(r.Body), leak) {
			tb.Fatalf("%s: the body shows %q: %s", what, leak, r.Body)
		}
	}
}

// ready returns /ready's status and, when 503, its details.
func (ts *testServer) ready() (int, map[string]string) {
	ts.t.Helper()
	r := ts.Do("GET", "/api/v1/ready", "", nil)
	if r.Status == 200 {
		return 200, nil
	}
	return r.Status, r.Err(ts.t).Details
}

// TestPostgresOutageAnswers503: while the database refuses connections
// (its backends terminated, new ones refused), requests that need it are
// answered 503 UNAVAILABLE with Retry-After, never 500, and /ready says
// 503; once it is back, the same requests succeed without a restart.
func TestPostgresOutageAnswers503(t *testing.T) {
	base := testutil.RequirePostgres(t)
	ts := mustRunMain(t)
	a, _ := ts.sandboxSession("a", client.SessionConfig{})
	var name string
	if err := ts.DB.SQL().QueryRow(`SELECT current_database()`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	end := testutil.PostgresOutage(t, base, name)

	for _, rq := range []struct{ method, path string }{
		{"GET", "/api/v1/sessions"},
		{"POST", "/api/v1/sessions"},
		{"GET", "/api/v1/sessions/" + a.ID + "/messages"},
		{"GET", "/api/v1/webhooks"},
		{"PATCH", "/api/v1/sessions/" + a.ID},
	} {
		for i := range 3 {
			var body any
			if rq.method != "GET" {
				body = map[string]any{"name": fmt.Sprintf("n%d", i), "engine": "sandbox"}
				if rq.method == "PATCH" {
					body = map[string]any{"name": fmt.Sprintf("n%d", i)}
				}
			}
			mustUnavailable(t, rq.method+" "+rq.path, ts.Do(rq.method, rq.path, testAdminToken, body), name, "SQLSTATE", "postgres")
		}
	}
	if st, d := ts.ready(); st != 503 || d["database"] != "unreachable" {
		t.Fatalf("ready during the outage: %d %v", st, d)
	}

	end()
	testutil.Eventually(t, 30*time.Second, func() bool {
		return ts.Do("POST", "/api/v1/sessions", testAdminToken, map[string]any{"name": "after", "engine": "sandbox"}).Status == 201
	}, "sessions cannot be created once the database is back")
	if st, d := ts.ready(); st != 200 {
		t.Fatalf("ready once the database is back: %d %v", st, d)
	}
}

// TestSQLiteFullAnswers503: a database that cannot grow (SQLite's own
// max_page_count: a real SQLITE_FULL, no root needed) answers writes 503
// UNAVAILABLE with Retry-After and /ready 503 (database failing); once it
// may grow again, writes succeed and /ready is 200 without a restart.
func TestSQLiteFullAnswers503(t *testing.T) {
	cfg := testConfig(t)
	if strings.HasPrefix(cfg.DatabaseURL, "postgres") {
		t.Skip("SQLite's page limit")
	}
	ts := mustRunConfig(t, cfg)
	var pages int
	if err := ts.DB.SQL().QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	// The writer's pool has one connection: the limit applies to it.
	if _, err := ts.DB.SQL().Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages+16)); err != nil {
		t.Fatal(err)
	}
	var r rawResponse
	i := 0
	for ; i < 100; i++ {
		if r = ts.createBigSession(i, 15<<10); r.Status != 201 {
			break
		}
	}
	mustUnavailable(t, "a write to the full database", r, "SQLITE", "full", cfg.DataDir)
	if st, d := ts.ready(); st != 503 || d["database"] != "failing" {
		t.Fatalf("ready while writes fail: %d %v", st, d)
	}

	if _, err := ts.DB.SQL().Exec(`PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	if r := ts.createBigSession(i, 15<<10); r.Status != 201 {
		t.Fatalf("a write once the database may grow: %d %s", r.Status, r.Body)
	}
	if st, d := ts.ready(); st != 200 {
		t.Fatalf("ready once writes commit: %d %v", st, d)
	}
}

// TestFullDiskAnswers503AndRecovers: the data directory on a small tmpfs
// (mounting needs root; skipped otherwise) is filled up. Writes are then
// answered 503 UNAVAILABLE, /ready says 503; once space is freed the server
// stores again by itself: the checkpoint is tried again without waiting for
// a commit (which the full disk may never let through) and gives the log's
// space back.
func TestFullDiskAnswers503AndRecovers(t *testing.T) {
	cfg := testConfig(t)
	if strings.HasPrefix(cfg.DatabaseURL, "postgres") {
		t.Skip("SQLite's files on a full disk")
	}
	disk := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(disk, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", disk).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", disk).Run() })
	cfg.DataDir = disk
	cfg.DatabaseURL = "sqlite://" + filepath.Join(disk, "wabsync.db")
	cfg.MinFreeDisk = 1 << 20
	ts := mustRunConfig(t, cfg)
	if st, d := ts.ready(); st != 200 {
		t.Fatalf("ready before: %d %v", st, d)
	}

	filler := filepath.Join(disk, "filler")
	fillDisk(t, filler)
	var r rawResponse
	i := 0
	for ; i < 4000; i++ {
		if r = ts.createBigSession(i, 15<<10); r.Status != 201 {
			break
		}
	}
	mustUnavailable(t, "a write to the full disk", r, "SQLITE", "full", disk)
	for range 3 {
		i++
		mustUnavailable(t, "another write", ts.createBigSession(i, 15<<10), "SQLITE", "full", disk)
	}
	if st, d := ts.ready(); st != 503 || d["disk"] != "low" {
		t.Fatalf("ready on a full disk: %d %v", st, d)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// Without a single write, the log that grew until the disk was full is
	// checkpointed and its space given back.
	wal := filepath.Join(disk, "wabsync.db-wal")
	testutil.Eventually(t, 30*time.Second, func() bool {
		fi, err := os.Stat(wal)
		return err == nil && fi.Size() == 0
	}, "the write-ahead log keeps its space once the disk has room")
	testutil.Eventually(t, 30*time.Second, func() bool {
		i++
		return ts.createBigSession(i, 1<<10).Status == 201
	}, "writes do not succeed once space is back")
	for range 20 {
		i++
		if r := ts.createBigSession(i, 15<<10); r.Status != 201 {
			t.Fatalf("a write once space is back: %d %s", r.Status, r.Body)
		}
	}
	if st, d := ts.ready(); st != 200 {
		t.Fatalf("ready once space is back: %d %v", st, d)
	}
}

// fillDisk writes path until its disk is full.
func fillDisk(tb testing.TB, path string) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			return // ENOSPC
		}
	}
}

// TestReadyFreeDiskFloor: less free space than WABSYNC_MIN_FREE_DISK on the
// data directory's disk makes /ready 503, naming the disk.
func TestReadyFreeDiskFloor(t *testing.T) {
	ts := mustRunMain(t, func(c *Config) { c.MinFreeDisk = 1 << 62 })
	if st, d := ts.ready(); st != 503 || d["disk"] != "low" {
		t.Fatalf("ready below the floor: %d %v, want 503 naming the disk", st, d)
	}
	ok := mustRunMain(t, func(c *Config) { c.MinFreeDisk = 1 << 20 })
	if st, d := ok.ready(); st != 200 {
		t.Fatalf("ready above the floor: %d %v", st, d)
	}
}

// TestDataDirFilesPrivate: whatever the umask, every file the server keeps
// in its data directory (the SQLite database, its -wal and -shm, the
// sandbox's mail database, stored media) is readable by its owner only.
func TestDataDirFilesPrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	cfg := testConfig(t)
	if strings.HasPrefix(cfg.DatabaseURL, "postgres") {
		t.Skip("SQLite's files")
	}
	cfg.DatabaseURL = "" // the default: SQLite in the data directory
	ts := mustRunConfig(t, cfg)
	a, _ := ts.linkedSession("a", client.SessionConfig{})
	body := "--b\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n+15550000004\r\n" +
		"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n"
	if r := ts.Do("POST", "/api/v1/sessions/"+a.ID+"/messages/file", testAdminToken, strings.NewReader(body),
		"Content-Type", "multipart/form-data; boundary=b"); r.Status != 201 {
		t.Fatalf("send a file: %d %s", r.Status, r.Body)
	}
	files := 0
	err := filepath.WalkDir(cfg.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files++
		if m := fi.Mode().Perm(); m&0o077 != 0 {
			t.Errorf("%s: mode %o, want 600", strings.TrimPrefix(path, cfg.DataDir), m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 4 {
		t.Fatalf("only %d files in the data directory", files)
	}
}
