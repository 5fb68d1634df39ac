package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io/fs"
	"mime/multipart"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wabsync/wabsync/client"
	"github.com/wabsync/wabsync/internal/testutil"
)

// blobFiles lists the files of the server's blob store (temp files too).
func (ts *testServer) blobFiles() []string {
	ts.t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(ts.Config.DataDir, "media"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, filepath.Base(p))
		}
		return nil
	})
	if err != nil {
		ts.t.Fatal(err)
	}
	return out
}

// ageBlobs sets the modification time of every file of the blob store to
// d ago, except those of keep.
func (ts *testServer) ageBlobs(d time.Duration, keep ...string) {
	ts.t.Helper()
	old := time.Now().Add(-d)
	err := filepath.WalkDir(filepath.Join(ts.Config.DataDir, "media"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		for _, k := range keep {
			if e.Name() == k {
				return nil
			}
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		ts.t.Fatal(err)
	}
}

// multipartOrdered builds a multipart body whose fields come before the
// file part (before) and after it (after).
func multipartOrdered(tb testing.TB, before, after [][2]string, data []byte) (*bytes.Buffer, string) {
	tb.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range before {
		_ = mw.WriteField(f[0], f[1])
	}
	w, err := mw.CreateFormFile("file", "f.pdf")
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = w.Write(data)
	for _, f := range after {
		_ = mw.WriteField(f[0], f[1])
	}
	_ = mw.Close()
	return &buf, mw.FormDataContentType()
}

// A file upload that fails leaves no file behind: whether it fails before
// the file is read (another session's id, a bad field before the file) or
// after (a field after the file, the file's type, an idempotency conflict).
func TestRejectedUploadsLeaveNoFile(t *testing.T) {
	ts := mustRunMain(t)
	a := ts.linkedPeer("a", client.SessionConfig{})
	b := ts.linkedPeer("b", client.SessionConfig{})
	pdf := func() []byte { return append([]byte("%PDF-1.7\n"), randomBytes(200_000)...) }
	b64 := base64.StdEncoding.EncodeToString
	mine := "/api/v1/sessions/me/messages/file"
	want := func(t *testing.T, r rawResponse, status int, code string) {
		t.Helper()
		if e := r.Err(t); r.Status != status || e.Code != code {
			t.Fatalf("want %d %s, got %d %s", status, code, r.Status, r.Body)
		}
		if fs := ts.blobFiles(); len(fs) != 0 {
			t.Fatalf("files left behind: %v", fs)
		}
	}
	t.Run("OtherSessionsID", func(t *testing.T) {
		for range 10 {
			body, ct := multipartOrdered(t, [][2]string{{"to", b.Phone}}, nil, pdf())
			want(t, ts.Do("POST", "/api/v1/sessions/"+b.ID+"/messages/file", a.Token, body, "Content-Type", ct), 404, "NOT_FOUND")
			want(t, ts.Do("POST", "/api/v1/sessions/"+b.ID+"/messages/file", a.Token,
				map[string]any{"to": b.Phone, "base64": b64(pdf())}), 404, "NOT_FOUND")
		}
	})
	t.Run("UnknownSession", func(t *testing.T) {
		body, ct := multipartOrdered(t, [][2]string{{"to", b.Phone}}, nil, pdf())
		want(t, ts.Do("POST", "/api/v1/sessions/ses_nosuchsession/messages/file", testAdminToken, body, "Content-Type", ct), 404, "NOT_FOUND")
	})
	t.Run("IdempotencyKeyTooLong", func(t *testing.T) {
		body, ct := multipartOrdered(t, [][2]string{{"to", b.Phone}}, nil, pdf())
		want(t, ts.Do("POST", mine, a.Token, body, "Content-Type", ct, "Idempotency-Key", strings.Repeat("k", 256)), 400, "BAD_REQUEST")
	})
	for name, fields := range map[string][2]string{
		"InvalidTo":         {"to", "someone"},
		"UnknownKind":       {"kind", "gif"},
		"ExecutableType":    {"mime_type", "application/x-executable"},
		"UnknownReplyTo":    {"reply_to", "msg_nosuchmessage"},
		"UnknownFieldFirst": {"colour", "red"},
	} {
		t.Run(name+"BeforeFile", func(t *testing.T) {
			before := [][2]string{{"to", b.Phone}, fields}
			if fields[0] == "to" {
				before = before[1:]
			}
			body, ct := multipartOrdered(t, before, nil, pdf())
			want(t, ts.Do("POST", mine, a.Token, body, "Content-Type", ct), 422, "VALIDATION_ERROR")
		})
		t.Run(name+"AfterFile", func(t *testing.T) {
			before := [][2]string{{"to", b.Phone}}
			if fields[0] == "to" {
				before = nil
			}
			body, ct := multipartOrdered(t, before, [][2]string{fields}, pdf())
			want(t, ts.Do("POST", mine, a.Token, body, "Content-Type", ct), 422, "VALIDATION_ERROR")
		})
		t.Run(name+"Base64", func(t *testing.T) {
			req := map[string]any{"to": b.Phone, "base64": b64(pdf()), fields[0]: fields[1]}
			want(t, ts.Do("POST", mine, a.Token, req), 422, "VALIDATION_ERROR")
		})
	}
	t.Run("ExecutableFile", func(t *testing.T) {
		body, ct := multipartOrdered(t, [][2]string{{"to", b.Phone}}, nil, elf)
		want(t, ts.Do("POST", mine, a.Token, body, "Content-Type", ct), 422, "VALIDATION_ERROR")
		want(t, ts.Do("POST", mine, a.Token, map[string]any{"to": b.Phone, "base64": b64(elf)}), 422, "VALIDATION_ERROR")
	})
	t.Run("NotConnectedAndNotToQueue", func(t *testing.T) {
		_, tok := ts.sandboxSession("offline", client.SessionConfig{})
		body, ct := multipartOrdered(t, [][2]string{{"to", b.Phone}, {"queue_if_offline", "false"}}, nil, pdf())
		want(t, ts.Do("POST", mine, tok, body, "Content-Type", ct), 409, "SESSION_NOT_CONNECTED")
	})
	t.Run("IdempotencyConflict", func(t *testing.T) {
		first := pdf()
		body, ct := multipartOrdered(t, [][2]string{{"to", b.Phone}}, nil, first)
		if r := ts.Do("POST", mine, a.Token, body, "Content-Type", ct, "Idempotency-Key", "conflict-1"); r.Status != 201 {
			t.Fatalf("first upload: %d %s", r.Status, r.Body)
		}
		kept := ts.blobFiles()
		body, ct = multipartOrdered(t, [][2]string{{"to", b.Phone}}, nil, pdf())
		r := ts.Do("POST", mine, a.Token, body, "Content-Type", ct, "Idempotency-Key", "conflict-1")
		if e := r.Err(t); r.Status != 409 || e.Code != "IDEMPOTENCY_CONFLICT" {
			t.Fatalf("want 409, got %d %s", r.Status, r.Body)
		}
		// A replay of the first keeps the first's file.
		body, ct = multipartOrdered(t, [][2]string{{"to", b.Phone}}, nil, first)
		if r := ts.Do("POST", mine, a.Token, body, "Content-Type", ct, "Idempotency-Key", "conflict-1"); r.Status != 201 {
			t.Fatalf("replay: %d %s", r.Status, r.Body)
		}
		if got := ts.blobFiles(); len(got) != 1 || len(kept) != 1 || got[0] != kept[0] {
			t.Fatalf("files %v, want only the first upload's %v", got, kept)
		}
	})
}

// The collector removes the files no message refers to once they are older
// than the grace period: those of a deleted session, and leftovers; it keeps
// every file a message refers to and every file younger than the grace.
func TestBlobCollector(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	a := ts.linkedPeer("a", client.SessionConfig{})
	b := ts.linkedPeer("b", client.SessionConfig{})
	// To a number that is no session: a recipient session would store the
	// file for its inbound message too.
	const to = "+14155550123"
	send := func(p *peer) (*client.Message, []byte) {
		t.Helper()
		data := append([]byte("%PDF-1.7\n"), randomBytes(1000)...)
		m, err := p.C.UploadFile(ctx, "me", client.Upload{To: to, Filename: "f.pdf"}, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		return m, data
	}
	_, aData := send(a)
	bMsg, bData := send(b)
	// Files no message refers to, as a crash between storing a file and
	// accepting its message leaves them: one old, one young.
	orphan, err := ts.Blobs.Put(ctx, bytes.NewReader(randomBytes(1000)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	young, err := ts.Blobs.Put(ctx, bytes.NewReader(randomBytes(1000)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	ts.ageBlobs(2*time.Hour, young.Key)
	has := func(key string) bool {
		for _, f := range ts.blobFiles() {
			if f == key {
				return true
			}
		}
		return false
	}
	if n := ts.CollectBlobs(ctx); n != 1 || has(orphan.Key) {
		t.Fatalf("first collection removed %d files (orphan still there: %v), want the old orphan only", n, has(orphan.Key))
	}
	for name, key := range map[string]string{"a's": sha(aData), "b's": sha(bData), "the young orphan's": young.Key} {
		if !has(key) {
			t.Fatalf("%s file was removed", name)
		}
	}
	t.Run("SessionDeleted", func(t *testing.T) {
		if r := ts.Do("DELETE", "/api/v1/sessions/"+a.ID, testAdminToken, nil); r.Status/100 != 2 {
			t.Fatalf("delete session: %d %s", r.Status, r.Body)
		}
		if n := ts.CollectBlobs(ctx); n != 1 || has(sha(aData)) {
			t.Fatalf("collection after deleting a removed %d files, want a's file", n)
		}
		if !has(sha(bData)) || !has(young.Key) {
			t.Fatal("b's file or the young orphan was removed")
		}
		got, _ := readDownload(t)(b.C.DownloadMedia(ctx, "me", bMsg.ID))
		if !bytes.Equal(got, bData) {
			t.Fatal("b's file does not download any more")
		}
	})
}

// The server collects by itself, every MediaGCInterval.
func TestBlobCollectorRuns(t *testing.T) {
	ts := mustRunMain(t, func(c *Config) { c.MediaGCInterval, c.MediaGCGrace = 20*time.Millisecond, time.Minute })
	orphan, err := ts.Blobs.Put(context.Background(), bytes.NewReader(randomBytes(100)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	ts.ageBlobs(2 * time.Minute)
	testutil.Eventually(t, 30*time.Second, func() bool { return len(ts.blobFiles()) == 0 },
		"the old orphan %s was not collected", orphan.Key)
}

// Two nodes on one PostgreSQL database, each with its own data directory:
// each collects only its own store, and keeps a file that a message stored
// through the other node refers to.
func TestBlobCollectorOwnStore(t *testing.T) {
	testutil.RequirePostgres(t)
	cfg := testConfig(t)
	cfgA, cfgB := cfg, cfg
	cfgA.NodeID, cfgB.NodeID = "node-a", "node-b"
	cfgB.DataDir = t.TempDir()
	a := mustRunConfig(t, cfgA)
	b := mustRunConfig(t, cfgB)
	ctx := context.Background()
	p := a.linkedPeer("a", client.SessionConfig{})
	data := append([]byte("%PDF-1.7\n"), randomBytes(1000)...)
	if _, err := p.C.UploadFile(ctx, "me", client.Upload{To: "+14155550123", Filename: "f.pdf"}, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	put := func(ts *testServer, d []byte) string {
		t.Helper()
		blob, err := ts.Blobs.Put(ctx, bytes.NewReader(d), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		return blob.Key
	}
	orphanA := put(a, randomBytes(100))
	orphanB := put(b, randomBytes(100))
	copyB := put(b, data) // the same bytes in B's store
	a.ageBlobs(2 * time.Hour)
	b.ageBlobs(2 * time.Hour)
	if n := b.CollectBlobs(ctx); n != 1 {
		t.Fatalf("node B removed %d files, want its orphan %s only", n, orphanB)
	}
	if got := b.blobFiles(); len(got) != 1 || got[0] != copyB {
		t.Fatalf("node B keeps %v, want only %s (a message refers to it)", got, copyB)
	}
	if got := a.blobFiles(); len(got) != 2 {
		t.Fatalf("node A's store changed when B collected: %v", got)
	}
	if n := a.CollectBlobs(ctx); n != 1 {
		t.Fatalf("node A removed %d files, want its orphan %s only", n, orphanA)
	}
	if got := a.blobFiles(); len(got) != 1 || got[0] != sha(data) {
		t.Fatalf("node A keeps %v, want only the message's file", got)
	}
}
