package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/wabsync/wabsync/client"
)

// mediaFile is a small file of one kind, with bytes the server's sniffer
// recognises.
type mediaFile struct {
	kind     string // the message kind it makes
	mime     string // the MIME type the server finds
	askKind  bool   // send kind explicitly (a sticker is never inferred)
	filename string
	data     []byte
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func pngBytes(tb testing.TB) []byte {
	tb.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	seed := randomBytes(64)
	for i := range 64 {
		img.Set(i%8, i/8, color.RGBA{seed[i], seed[63-i], 128, 255})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// oggOpus is the start of an Ogg stream whose first packet is an Opus header.
func oggOpus() []byte {
	b := []byte("OggS\x00\x02")
	b = append(b, make([]byte, 20)...) // granule, serial, sequence, checksum
	b = append(b, 1, 19)               // one segment of 19 bytes
	b = append(b, "OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00"...)
	return append(b, randomBytes(200)...)
}

// mediaFiles returns one fresh file of every kind (random content, so every
// call gives other SHA-256s).
func mediaFiles(tb testing.TB) []mediaFile {
	return []mediaFile{
		{kind: "image", mime: "image/png", filename: "photo.png", data: pngBytes(tb)},
		{kind: "video", mime: "video/mp4", filename: "clip.mp4",
			data: append([]byte("\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2\x00\x00\x00\x08free"), randomBytes(300)...)},
		// An ID3v2 tag of 10 bytes: the sniffer checks the header, size included.
		{kind: "audio", mime: "audio/mpeg", filename: "song.mp3", data: append([]byte("ID3\x03\x00\x00\x00\x00\x00\x0a"), randomBytes(300)...)},
		{kind: "voice", mime: "audio/ogg; codecs=opus", filename: "note.ogg", data: oggOpus()},
		{kind: "document", mime: "application/pdf", filename: "report 2026.pdf", data: append([]byte("%PDF-1.7\n"), randomBytes(300)...)},
		{kind: "sticker", mime: "image/webp", askKind: true, filename: "sticker.webp",
			data: append([]byte("RIFF\x00\x01\x00\x00WEBPVP8 "), randomBytes(300)...)},
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// readDownload returns a function that reads a download whole (called as
// readDownload(t)(c.DownloadMedia(…))).
func readDownload(tb testing.TB) func(d *client.Download, err error) ([]byte, string) {
	return func(d *client.Download, err error) ([]byte, string) {
		tb.Helper()
		if err != nil {
			tb.Fatalf("download: %v", err)
		}
		defer d.Body.Close()
		b, err := io.ReadAll(d.Body)
		if err != nil {
			tb.Fatal(err)
		}
		return b, d.ContentType
	}
}

// fileServer serves files on 127.0.0.1 by name, with their MIME types.
type fileServer struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string]mediaFile
}

func newFileServer(tb testing.TB) *fileServer {
	fs := &fileServer{files: map[string]mediaFile{}}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		f, ok := fs.files[strings.TrimPrefix(r.URL.Path, "/")]
		fs.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", f.mime)
		_, _ = w.Write(f.data)
	}))
	tb.Cleanup(fs.Close)
	return fs
}

// add serves f and returns its URL.
func (fs *fileServer) add(name string, f mediaFile) string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.files[name] = f
	return fs.URL + "/" + name
}

func TestMediaEveryKindEveryWay(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	a := ts.linkedPeer("a", client.SessionConfig{})
	b := ts.linkedPeer("b", client.SessionConfig{})
	files := newFileServer(t)
	public := ts.Client("") // no token: signed links only
	for _, way := range []string{"Multipart", "Base64", "URL"} {
		t.Run(way, func(t *testing.T) {
			for _, f := range mediaFiles(t) {
				t.Run(f.kind, func(t *testing.T) {
					caption := way + " " + f.kind
					var kind *client.MediaKind
					if f.askKind {
						kind = ptr(client.MediaKind(f.kind))
					}
					var m *client.Message
					var err error
					switch way {
					case "Multipart":
						up := client.Upload{To: b.Phone, Filename: f.filename, Caption: caption}
						if kind != nil {
							up.Kind = *kind
						}
						m, err = a.C.UploadFile(ctx, "me", up, bytes.NewReader(f.data))
					case "Base64":
						m, err = a.C.SendFile(ctx, "me", client.SendFileRequest{To: b.Phone, Base64: f.data,
							Filename: ptr(f.filename), Caption: &caption, Kind: kind})
					case "URL":
						u := files.add(f.kind+"-"+f.filename, f)
						m, err = a.C.SendFile(ctx, "me", client.SendFileRequest{To: b.Phone, URL: &u,
							Filename: ptr(f.filename), Caption: &caption, Kind: kind})
					}
					if err != nil {
						t.Fatal(err)
					}
					if string(m.Kind) != f.kind || m.Media == nil || m.Media.Sha256 != sha(f.data) || m.Media.Size != int64(len(f.data)) ||
						m.Media.MimeType != f.mime || m.Status != "queued" || *m.Caption != caption {
						t.Fatalf("accepted %+v media %+v", m, m.Media)
					}
					got := inbound(t, b, m.WAID)
					if string(got.Kind) != f.kind || got.Media == nil || got.Media.Sha256 != sha(f.data) || got.Media.MimeType != f.mime ||
						got.Media.Size != int64(len(f.data)) || got.Caption == nil || *got.Caption != caption {
						t.Fatalf("received %+v media %+v", got, got.Media)
					}
					if got.Media.Filename == nil || *got.Media.Filename != f.filename {
						t.Fatalf("received filename %v, want %q", got.Media.Filename, f.filename)
					}
					// The bytes, three ways: the sender's copy, the
					// recipient's copy with its token, and the signed link
					// without one.
					body, ct := readDownload(t)(a.C.DownloadMedia(ctx, "me", m.ID))
					if sha(body) != sha(f.data) || ct != f.mime {
						t.Fatalf("sender's media: %d bytes of %s", len(body), ct)
					}
					body, ct = readDownload(t)(b.C.DownloadMedia(ctx, "me", got.ID))
					if sha(body) != sha(f.data) || ct != f.mime {
						t.Fatalf("recipient's media: %d bytes of %s", len(body), ct)
					}
					if got.Media.URL == nil || *got.Media.URL == "" {
						t.Fatalf("inbound media has no signed url: %+v", got.Media)
					}
					body, ct = readDownload(t)(public.DownloadURL(ctx, *got.Media.URL))
					if !bytes.Equal(body, f.data) || ct != f.mime {
						t.Fatalf("signed link: %d bytes of %s", len(body), ct)
					}
					waitStatusOf(t, a, m.ID, "delivered")
				})
			}
		})
	}
	t.Run("TamperedLink", func(t *testing.T) {
		in := allMessages(t, b, client.ListMessagesParams{Direction: ptr(client.Direction("in"))})
		if len(in) == 0 || in[0].Media == nil || in[0].Media.URL == nil {
			t.Fatalf("no media message to tamper with")
		}
		u := *in[0].Media.URL
		other := in[1].ID
		for name, bad := range map[string]string{
			"OtherMessage": strings.Replace(u, in[0].ID, other, 1),
			"NoSignature":  u[:strings.Index(u, "?")],
			"Signature":    u[:len(u)-2] + "xx",
		} {
			t.Run(name, func(t *testing.T) {
				path := bad[strings.Index(bad, "/api/v1/"):]
				r := ts.Do("GET", path, "", nil)
				if r.Status != 403 && r.Status != 404 {
					t.Fatalf("tampered link answered %d (%d bytes)", r.Status, len(r.Body))
				}
			})
		}
	})
	t.Run("MediaOfATextMessage", func(t *testing.T) {
		m, err := a.C.SendText(ctx, "me", client.SendTextRequest{To: b.Phone, Text: "no file here"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.C.DownloadMedia(ctx, "me", m.ID); !client.IsCode(err, "NOT_FOUND") {
			t.Fatalf("want NOT_FOUND, got %v", err)
		}
	})
}

// multipartBody builds a multipart request body with fields and a file part.
func multipartBody(tb testing.TB, fields map[string]string, filename string, data []byte) (io.Reader, string) {
	tb.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.SetBoundary("wabsync-test-boundary")
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			tb.Fatal(err)
		}
	}
	w, err := mw.CreateFormFile("file", filename)
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = w.Write(data)
	_ = mw.Close()
	return &buf, mw.FormDataContentType()
}

func TestMediaIdempotentMultipart(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	a := ts.linkedPeer("a", client.SessionConfig{})
	b := ts.linkedPeer("b", client.SessionConfig{})
	f := mediaFiles(t)[4] // a PDF
	up := client.Upload{To: b.Phone, Filename: f.filename, Caption: "invoice"}
	first, err := a.C.UploadFile(ctx, "me", up, bytes.NewReader(f.data), client.WithIdempotencyKey("upload-1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("SameFileReplays", func(t *testing.T) {
		again, err := a.C.UploadFile(ctx, "me", up, bytes.NewReader(f.data), client.WithIdempotencyKey("upload-1"))
		if err != nil || again.ID != first.ID || again.Media.Sha256 != first.Media.Sha256 {
			t.Fatalf("replay: %+v %v", again, err)
		}
	})
	t.Run("OtherFileConflicts", func(t *testing.T) {
		_, err := a.C.UploadFile(ctx, "me", up, bytes.NewReader(append([]byte("%PDF-1.7\n"), randomBytes(100)...)), client.WithIdempotencyKey("upload-1"))
		if !client.IsCode(err, "IDEMPOTENCY_CONFLICT") {
			t.Fatalf("want IDEMPOTENCY_CONFLICT, got %v", err)
		}
	})
	t.Run("OtherFieldConflicts", func(t *testing.T) {
		other := up
		other.Caption = "receipt"
		_, err := a.C.UploadFile(ctx, "me", other, bytes.NewReader(f.data), client.WithIdempotencyKey("upload-1"))
		if !client.IsCode(err, "IDEMPOTENCY_CONFLICT") {
			t.Fatalf("want IDEMPOTENCY_CONFLICT, got %v", err)
		}
	})
	t.Run("JSONBase64Replays", func(t *testing.T) {
		body := fmt.Sprintf(`{"to": %q, "base64": %q}`, b.Phone, base64.StdEncoding.EncodeToString(f.data))
		r1 := ts.Do("POST", "/api/v1/sessions/me/messages/file", a.Token, body, "Idempotency-Key", "json-1")
		r2 := ts.Do("POST", "/api/v1/sessions/me/messages/file", a.Token, body, "Idempotency-Key", "json-1")
		if r1.Status != 201 || r2.Status != 201 || !bytes.Equal(r1.Body, r2.Body) {
			t.Fatalf("%d %s\n%d %s", r1.Status, r1.Body, r2.Status, r2.Body)
		}
	})
	inbound(t, b, first.WAID)
	out := allMessages(t, a, client.ListMessagesParams{})
	if len(out) != 2 {
		t.Fatalf("want 2 messages (one per key), have %d", len(out))
	}
	for _, m := range out {
		waitStatusOf(t, a, m.ID, "delivered")
	}
	if in := allMessages(t, b, client.ListMessagesParams{}); len(in) != 2 {
		t.Fatalf("recipient has %d messages, want 2", len(in))
	}
}

// elf is the start of an x86-64 ELF executable.
var elf = append([]byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00"), make([]byte, 100)...)

func TestMediaValidation(t *testing.T) {
	ts := mustRunMain(t, func(c *Config) { c.MaxUpload = 4096 })
	a := ts.linkedPeer("a", client.SessionConfig{})
	path := "/api/v1/sessions/me/messages/file"
	b64 := base64.StdEncoding.EncodeToString
	files := newFileServer(t)
	wantField := func(t *testing.T, r rawResponse, status int, code, field string) {
		t.Helper()
		e := r.Err(t)
		if r.Status != status || e.Code != code || (field != "" && e.Details[field] == "") {
			t.Fatalf("want %d %s naming %q, got %d %s", status, code, field, r.Status, r.Body)
		}
	}
	t.Run("ExecutableBase64", func(t *testing.T) {
		r := ts.Do("POST", path, a.Token, map[string]any{"to": "+14155550123", "base64": b64(elf), "filename": "game.pdf"})
		wantField(t, r, 422, "VALIDATION_ERROR", "mime_type")
	})
	t.Run("ExecutableClaimingToBeAnImage", func(t *testing.T) {
		r := ts.Do("POST", path, a.Token, map[string]any{"to": "+14155550123", "base64": b64(elf), "mime_type": "image/png"})
		wantField(t, r, 422, "VALIDATION_ERROR", "mime_type")
	})
	t.Run("ExecutableMultipart", func(t *testing.T) {
		body, ct := multipartBody(t, map[string]string{"to": "+14155550123"}, "a.out", elf)
		r := ts.Do("POST", path, a.Token, body, "Content-Type", ct)
		wantField(t, r, 422, "VALIDATION_ERROR", "mime_type")
	})
	t.Run("ExecutableURL", func(t *testing.T) {
		u := files.add("tool", mediaFile{mime: "application/octet-stream", data: elf})
		r := ts.Do("POST", path, a.Token, map[string]any{"to": "+14155550123", "url": u})
		wantField(t, r, 422, "VALIDATION_ERROR", "mime_type")
	})
	t.Run("UnknownKind", func(t *testing.T) {
		body, ct := multipartBody(t, map[string]string{"to": "+14155550123", "kind": "gif"}, "x.png", pngBytes(t))
		r := ts.Do("POST", path, a.Token, body, "Content-Type", ct)
		wantField(t, r, 422, "VALIDATION_ERROR", "kind")
	})
	t.Run("BadTo", func(t *testing.T) {
		body, ct := multipartBody(t, map[string]string{"to": "someone"}, "x.png", pngBytes(t))
		r := ts.Do("POST", path, a.Token, body, "Content-Type", ct)
		wantField(t, r, 422, "VALIDATION_ERROR", "to")
	})
	t.Run("NoFilePart", func(t *testing.T) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("to", "+14155550123")
		_ = mw.Close()
		r := ts.Do("POST", path, a.Token, &buf, "Content-Type", mw.FormDataContentType())
		wantField(t, r, 422, "VALIDATION_ERROR", "file")
	})
	t.Run("BadBase64", func(t *testing.T) {
		r := ts.Do("POST", path, a.Token, map[string]any{"to": "+14155550123", "base64": "not base64!"})
		wantField(t, r, 422, "VALIDATION_ERROR", "base64")
	})
	t.Run("WrongContentType", func(t *testing.T) {
		r := ts.Do("POST", path, a.Token, strings.NewReader("hello"), "Content-Type", "text/plain")
		wantField(t, r, 415, "UNSUPPORTED_MEDIA_TYPE", "")
	})
	big := append([]byte("%PDF-1.7\n"), randomBytes(10000)...)
	t.Run("OversizeMultipart", func(t *testing.T) {
		body, ct := multipartBody(t, map[string]string{"to": "+14155550123"}, "big.pdf", big)
		r := ts.Do("POST", path, a.Token, body, "Content-Type", ct)
		wantField(t, r, 413, "PAYLOAD_TOO_LARGE", "")
	})
	t.Run("OversizeSDKUpload", func(t *testing.T) {
		_, err := a.C.UploadFile(context.Background(), "me", client.Upload{To: "+14155550123", Filename: "big.pdf"}, bytes.NewReader(big))
		if e, ok := client.AsAPIError(err); !ok || e.StatusCode != 413 || e.Code != "PAYLOAD_TOO_LARGE" {
			t.Fatalf("want 413, got %v", err)
		}
	})
	t.Run("OversizeBase64", func(t *testing.T) {
		r := ts.Do("POST", path, a.Token, map[string]any{"to": "+14155550123", "base64": b64(big)})
		wantField(t, r, 413, "PAYLOAD_TOO_LARGE", "")
	})
	t.Run("OversizeURL", func(t *testing.T) {
		u := files.add("big.pdf", mediaFile{mime: "application/pdf", data: big})
		r := ts.Do("POST", path, a.Token, map[string]any{"to": "+14155550123", "url": u})
		wantField(t, r, 413, "PAYLOAD_TOO_LARGE", "")
	})
	t.Run("JustUnderTheLimit", func(t *testing.T) {
		body, ct := multipartBody(t, map[string]string{"to": "+14155550123"}, "ok.pdf", big[:4096])
		r := ts.Do("POST", path, a.Token, body, "Content-Type", ct)
		if r.Status != 201 {
			t.Fatalf("a file of exactly the limit: %d %s", r.Status, r.Body)
		}
	})
	t.Run("PrivateURLRefused", func(t *testing.T) {
		strict := mustRunMain(t, func(c *Config) { c.AllowPrivateURLs = false })
		s := strict.linkedPeer("s", client.SessionConfig{})
		fetched := false
		probe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fetched = true
			_, _ = w.Write(pngBytes(t))
		}))
		defer probe.Close()
		for _, u := range []string{probe.URL + "/x.png", strings.Replace(probe.URL, "127.0.0.1", "localhost", 1) + "/x.png", "http://169.254.169.254/latest/meta-data"} {
			r := strict.Do("POST", path, s.Token, map[string]any{"to": "+14155550123", "url": u})
			wantField(t, r, 422, "VALIDATION_ERROR", "url")
		}
		if fetched {
			t.Fatal("the server fetched a private URL")
		}
	})
	t.Run("NothingStored", func(t *testing.T) {
		l := allMessages(t, a, client.ListMessagesParams{})
		if len(l) != 1 {
			t.Fatalf("want only the message at the limit, have %d", len(l))
		}
	})
}

func TestSandboxInboundMedia(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	b := ts.linkedPeer("b", client.SessionConfig{})
	public := ts.Client("")
	for _, f := range mediaFiles(t) {
		t.Run(f.kind, func(t *testing.T) {
			kind := client.SandboxInboundRequestKind(f.kind)
			r, err := ts.Admin.SandboxInboundWithResponse(ctx, nil, client.SandboxInboundRequest{Session: b.ID, From: "+14155550100",
				Kind: &kind, Base64: f.data, Filename: ptr(f.filename), Caption: ptr("look")})
			if err != nil || r.JSON201 == nil {
				t.Fatalf("inbound: %v %d %s", err, r.StatusCode(), r.Body)
			}
			m := r.JSON201.Data
			if string(m.Kind) != f.kind || m.Media == nil || m.Media.Sha256 != sha(f.data) || m.Media.MimeType != f.mime || m.Media.URL == nil {
				t.Fatalf("stored %+v media %+v", m, m.Media)
			}
			body, ct := readDownload(t)(public.DownloadURL(ctx, *m.Media.URL))
			if !bytes.Equal(body, f.data) || ct != f.mime {
				t.Fatalf("signed link: %d bytes of %s", len(body), ct)
			}
			got := waitEvent(t, b, "message.received", func(e *client.Message) bool { return e.ID == m.ID })
			if got.Media == nil || got.Media.URL == nil {
				t.Fatalf("event without a media link: %+v", got.Media)
			}
			body, _ = readDownload(t)(public.DownloadURL(ctx, *got.Media.URL))
			if !bytes.Equal(body, f.data) {
				t.Fatalf("event's signed link: %d bytes", len(body))
			}
		})
	}
	t.Run("MissingBase64", func(t *testing.T) {
		r := ts.Do("POST", "/api/v1/sandbox/inbound", testAdminToken, map[string]any{"session": b.ID, "from": "+14155550100", "kind": "image"})
		if r.Status != 422 || r.Err(t).Details["base64"] == "" {
			t.Fatalf("got %d %s", r.Status, r.Body)
		}
	})
}
