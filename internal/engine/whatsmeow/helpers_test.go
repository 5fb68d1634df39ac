package whatsmeow

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types"
	_ "modernc.org/sqlite"

	"github.com/wabsync/wabsync"
)

// testDB is one database of a test: a dialect and an open *sql.DB.
type testDB struct {
	name    string
	dialect string
	db      *sql.DB
}

// MustOpenSQLite opens a fresh SQLite file the way WabSync does (WAL, foreign
// keys on, busy timeout, immediate transactions).
func MustOpenSQLite(tb testing.TB) *sql.DB {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "wabsync.db")
	pragmas := "_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)"
	db, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_txlock=immediate")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		tb.Fatal(err)
	}
	return db
}

// MustOpenPostgres creates a throwaway database on the server of
// WABSYNC_TEST_DATABASE_URL and drops it after the test; it skips the test
// when the variable is not set.
func MustOpenPostgres(tb testing.TB) *sql.DB {
	tb.Helper()
	raw := os.Getenv("WABSYNC_TEST_DATABASE_URL")
	if raw == "" {
		tb.Skip("WABSYNC_TEST_DATABASE_URL is not set; skipping the PostgreSQL run")
	}
	admin, err := sql.Open("pgx", raw)
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "wabsync_wm_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = "/" + name
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		db.Close()
		a, err := sql.Open("pgx", raw)
		if err != nil {
			tb.Errorf("drop database: %v", err)
			return
		}
		defer a.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := a.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop database %s: %v", name, err)
		}
	})
	return db
}

// eachDB runs fn on SQLite, and on PostgreSQL when configured.
func eachDB(t *testing.T, fn func(t *testing.T, d testDB)) {
	t.Run("SQLite", func(t *testing.T) {
		fn(t, testDB{name: "sqlite", dialect: "sqlite3", db: MustOpenSQLite(t)})
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		fn(t, testDB{name: "postgres", dialect: "postgres", db: MustOpenPostgres(t)})
	})
}

func testLogger(tb testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// MustFactory returns a factory on a fresh SQLite database whose engines use
// fake clients made by newFake.
func MustFactory(tb testing.TB, opts Options) *Factory {
	tb.Helper()
	f, err := NewFactory(context.Background(), MustOpenSQLite(tb), "sqlite3", testLogger(tb), opts)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// Own identity of the test account.
var (
	ownDevice = types.NewADJID("14155550100", 0, 7)
	ownLID    = types.NewJID("99900000000001", types.HiddenUserServer)
)

// mustLinkedDevice stores a linked device for the test account.
func mustLinkedDevice(tb testing.TB, f *Factory, jid types.JID, pushName string) *store.Device {
	tb.Helper()
	dev := f.container.NewDevice()
	dev.ID = &jid
	dev.LID = ownLID
	dev.PushName = pushName
	dev.Platform = "android"
	dev.Account = &waAdv.ADVSignedDeviceIdentity{
		Details: []byte("details"), AccountSignatureKey: make([]byte, 32),
		AccountSignature: make([]byte, 64), DeviceSignature: make([]byte, 64),
	}
	if err := dev.Save(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return dev
}

// recorder is an EngineHandler that keeps what it got.
type recorder struct {
	mu     sync.Mutex
	events []wabsync.EngineEvent
	fail   error // returned for message, receipt and undecryptable events
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 100)} }

func (r *recorder) handle(ctx context.Context, ev wabsync.EngineEvent) error {
	r.mu.Lock()
	r.events = append(r.events, ev)
	fail := r.fail
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	switch ev.(type) {
	case wabsync.EngineMessage, wabsync.EngineReceipt, wabsync.EngineUndecryptable:
		return fail
	}
	return nil
}

func (r *recorder) all() []wabsync.EngineEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]wabsync.EngineEvent(nil), r.events...)
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.events = nil
	r.mu.Unlock()
}

// waitFor waits until an event satisfies match.
func (r *recorder) waitFor(tb testing.TB, what string, match func(wabsync.EngineEvent) bool) wabsync.EngineEvent {
	tb.Helper()
	deadline := time.After(5 * time.Second)
	for {
		for _, ev := range r.all() {
			if match(ev) {
				return ev
			}
		}
		select {
		case <-r.notify:
		case <-deadline:
			tb.Fatalf("no %s event; got %#v", what, r.all())
			return nil
		}
	}
}

// sentMessage is one SendMessage call of the fake.
type sentMessage struct {
	to    types.JID
	msg   *waE2E.Message
	extra []whatsmeow.SendRequestExtra
}

// fakeClient stands in for *whatsmeow.Client below the network edge: it
// records what the engine asks of WhatsApp and answers as configured.
type fakeClient struct {
	mu       sync.Mutex
	dev      *store.Device
	handlers []whatsmeow.EventHandlerWithSuccessStatus

	connected, loggedIn bool
	connectErr          error
	// onConnect runs after a successful ConnectContext (e.g. to fire
	// events.Connected like the server would).
	onConnect func(c *fakeClient)
	qr        chan whatsmeow.QRChannelItem
	disconn   int

	sent     []sentMessage
	sendErr  error
	sendTime time.Time

	uploads   [][]byte
	uploadMT  []whatsmeow.MediaType
	uploadErr error

	onWhatsApp map[string]bool // "+digits" → registered
	checks     [][]string
	checkErr   error

	markRead []markReadCall
	presence []presenceCall

	pairPhone string
	pairCode  string
	pairErr   error

	logouts   int
	logoutErr error

	download    []byte
	downloadErr error
	downloads   []downloadCall
}

type markReadCall struct {
	ids          []types.MessageID
	at           time.Time
	chat, sender types.JID
}

type presenceCall struct {
	to    types.JID
	state types.ChatPresence
	media types.ChatPresenceMedia
}

type downloadCall struct {
	path              string
	enc, sha, key     []byte
	mediaType         whatsmeow.MediaType
	mms               string
	allowNoHash       bool
	tempFileWasNamed  bool
	tempFileNameAfter string
}

var _ waClient = (*fakeClient)(nil)

func (c *fakeClient) AddEventHandlerWithSuccessStatus(h whatsmeow.EventHandlerWithSuccessStatus) uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handlers = append(c.handlers, h)
	return uint32(len(c.handlers))
}

func (c *fakeClient) RemoveEventHandler(id uint32) bool { return true }

// fire dispatches evt like whatsmeow's dispatchEvent: false when a handler
// failed.
func (c *fakeClient) fire(evt any) bool {
	c.mu.Lock()
	hs := append([]whatsmeow.EventHandlerWithSuccessStatus(nil), c.handlers...)
	c.mu.Unlock()
	for _, h := range hs {
		if !h(evt) {
			return false
		}
	}
	return true
}

func (c *fakeClient) GetQRChannel(ctx context.Context) (<-chan whatsmeow.QRChannelItem, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dev.ID != nil {
		return nil, whatsmeow.ErrQRStoreContainsID
	}
	c.qr = make(chan whatsmeow.QRChannelItem, 8)
	return c.qr, nil
}

func (c *fakeClient) ConnectContext(ctx context.Context) error {
	c.mu.Lock()
	if c.connectErr != nil {
		err := c.connectErr
		c.mu.Unlock()
		return err
	}
	c.connected = true
	on := c.onConnect
	c.mu.Unlock()
	if on != nil {
		on(c)
	}
	return nil
}

func (c *fakeClient) Disconnect() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.connected, c.loggedIn = false, false
	c.disconn++
}

func (c *fakeClient) IsConnected() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.connected }
func (c *fakeClient) IsLoggedIn() bool  { c.mu.Lock(); defer c.mu.Unlock(); return c.loggedIn }

func (c *fakeClient) Logout(ctx context.Context) error {
	c.mu.Lock()
	c.logouts++
	err := c.logoutErr
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.Disconnect()
	return c.dev.Delete(ctx)
}

func (c *fakeClient) PairPhone(ctx context.Context, phone string, show bool, ct whatsmeow.PairClientType, name string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pairPhone = phone + "|" + string(ct) + "|" + name
	return c.pairCode, c.pairErr
}

func (c *fakeClient) SendMessage(ctx context.Context, to types.JID, msg *waE2E.Message, extra ...whatsmeow.SendRequestExtra) (whatsmeow.SendResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, sentMessage{to: to, msg: msg, extra: extra})
	if c.sendErr != nil {
		return whatsmeow.SendResponse{}, c.sendErr
	}
	var id types.MessageID
	if len(extra) == 1 {
		id = extra[0].ID
	}
	return whatsmeow.SendResponse{ID: id, Timestamp: c.sendTime}, nil
}

func (c *fakeClient) UploadReader(ctx context.Context, r io.Reader, tmp io.ReadWriteSeeker, mt whatsmeow.MediaType) (whatsmeow.UploadResponse, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return whatsmeow.UploadResponse{}, err
	}
	// Use the staging file like whatsmeow does.
	if _, err := tmp.Write(data); err != nil {
		return whatsmeow.UploadResponse{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.uploads = append(c.uploads, data)
	c.uploadMT = append(c.uploadMT, mt)
	if c.uploadErr != nil {
		return whatsmeow.UploadResponse{}, c.uploadErr
	}
	sum := sha256.Sum256(data)
	return whatsmeow.UploadResponse{
		URL:           "https://mmg.whatsapp.net/v/t62/fake",
		DirectPath:    "/v/t62/fake?ccb=11",
		MediaKey:      []byte("0123456789abcdef0123456789abcdef"),
		FileEncSHA256: []byte("enc-sha256"),
		FileSHA256:    sum[:],
		FileLength:    uint64(len(data)),
	}, nil
}

func (c *fakeClient) MarkRead(ctx context.Context, ids []types.MessageID, at time.Time, chat, sender types.JID, rt ...types.ReceiptType) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.markRead = append(c.markRead, markReadCall{ids: ids, at: at, chat: chat, sender: sender})
	return nil
}

func (c *fakeClient) SendChatPresence(ctx context.Context, jid types.JID, state types.ChatPresence, media types.ChatPresenceMedia) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.presence = append(c.presence, presenceCall{to: jid, state: state, media: media})
	return nil
}

func (c *fakeClient) IsOnWhatsApp(ctx context.Context, phones []string) ([]types.IsOnWhatsAppResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks = append(c.checks, phones)
	if c.checkErr != nil {
		return nil, c.checkErr
	}
	var out []types.IsOnWhatsAppResponse
	for _, p := range phones {
		in := c.onWhatsApp[p]
		r := types.IsOnWhatsAppResponse{Query: p, IsIn: in}
		pn := types.NewJID(strings.TrimPrefix(p, "+"), types.DefaultUserServer)
		if in {
			// whatsmeow now answers with the LID as JID and the PN apart.
			r.JID = types.NewJID("8"+strings.TrimPrefix(p, "+"), types.HiddenUserServer)
			r.PhoneNumber = pn
		} else {
			r.JID = pn
		}
		out = append(out, r)
	}
	return out, nil
}

func (c *fakeClient) DownloadMediaWithPathToFile(ctx context.Context, path string, enc, sha, key []byte, mt whatsmeow.MediaType, mms string, allowNoHash bool, file whatsmeow.File) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	call := downloadCall{path: path, enc: enc, sha: sha, key: key, mediaType: mt, mms: mms, allowNoHash: allowNoHash}
	if f, ok := file.(interface{ Name() string }); ok {
		if _, err := os.Stat(f.Name()); err == nil {
			call.tempFileWasNamed = true
		}
	}
	c.downloads = append(c.downloads, call)
	if c.downloadErr != nil {
		return c.downloadErr
	}
	_, err := file.Write(c.download)
	return err
}

func (c *fakeClient) Device() *store.Device { return c.dev }

// harness is an engine on a real store with a fake client.
type harness struct {
	f    *Factory
	e    *Engine
	rec  *recorder
	fake *fakeClient
	// fakes are all clients the engine made, in order.
	fakes []*fakeClient
	mu    sync.Mutex
	// setup configures each new fake.
	setup func(*fakeClient)
}

type harnessOpt func(*wabsync.EngineOptions, *Options)

func withDevice(jid string) harnessOpt {
	return func(o *wabsync.EngineOptions, _ *Options) { o.DeviceJID = jid }
}

func withTimeout(d time.Duration) harnessOpt {
	return func(_ *wabsync.EngineOptions, o *Options) { o.ConnectTimeout = d }
}

var fixedNow = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// newHarness builds an engine whose clients are fakes. With a linked device
// (the default) the engine's client exists and is logged in.
func newHarness(t *testing.T, linked bool, opts ...harnessOpt) *harness {
	t.Helper()
	h := &harness{rec: newRecorder()}
	fopts := Options{now: func() time.Time { return fixedNow }}
	eopts := wabsync.EngineOptions{SessionID: "ses_test", Name: "sales", Handler: h.rec.handle}
	for _, o := range opts {
		o(&eopts, &fopts)
	}
	fopts.newClient = func(dev *store.Device, cfg clientConfig) (waClient, error) {
		c := &fakeClient{dev: dev, onWhatsApp: map[string]bool{}}
		h.mu.Lock()
		h.fakes = append(h.fakes, c)
		h.fake = c
		setup := h.setup
		h.mu.Unlock()
		if setup != nil {
			setup(c)
		}
		return c, nil
	}
	h.f = MustFactory(t, fopts)
	if linked {
		mustLinkedDevice(t, h.f, ownDevice, "Alice")
		eopts.DeviceJID = ownDevice.String()
	}
	e, err := h.f.newEngine(eopts)
	if err != nil {
		t.Fatal(err)
	}
	h.e = e
	t.Cleanup(func() { e.Close() })
	if linked {
		if _, _, err := e.ensureClient(context.Background()); err != nil {
			t.Fatal(err)
		}
		h.fake.mu.Lock()
		h.fake.connected, h.fake.loggedIn = true, true
		h.fake.mu.Unlock()
		e.mu.Lock()
		e.connected, e.pushName = true, "Alice" // as after events.Connected
		e.mu.Unlock()
	}
	return h
}

func (h *harness) current() *fakeClient {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fake
}

// putLID records that lid and pn are the same user in the device's LID map.
func (h *harness) putLID(t *testing.T, lid, pn string) {
	t.Helper()
	l, _ := types.ParseJID(lid)
	p, _ := types.ParseJID(pn)
	if err := h.fake.dev.LIDs.PutLIDMapping(context.Background(), l, p); err != nil {
		t.Fatal(err)
	}
}

func mustJID(s string) types.JID {
	j, err := types.ParseJID(s)
	if err != nil {
		panic(err)
	}
	return j
}

var errStore = errors.New("database is locked")

func fmtEvents(evs []wabsync.EngineEvent) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%#v\n", e)
	}
	return b.String()
}
