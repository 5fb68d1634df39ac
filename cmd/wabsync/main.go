// Command wabsync is the WabSync server: a self-hosted WhatsApp REST API
// gateway. `wabsync` or `wabsync serve` runs it; `wabsync migrate` brings
// the database schema up to date and exits; `wabsync version` prints the
// version.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/api"
	"github.com/wabsync/wabsync/internal/apidocs"
	"github.com/wabsync/wabsync/internal/dashboard"
	"github.com/wabsync/wabsync/internal/engine/sandbox"
	"github.com/wabsync/wabsync/internal/engine/whatsmeow"
	"github.com/wabsync/wabsync/internal/eventbus"
	"github.com/wabsync/wabsync/internal/httpapi"
	"github.com/wabsync/wabsync/internal/media"
	"github.com/wabsync/wabsync/internal/ratelimit"
	"github.com/wabsync/wabsync/internal/safehttp"
	"github.com/wabsync/wabsync/internal/session"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/webhook"
)

func main() {
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 && (args[0] == "serve" || args[0] == "migrate" || args[0] == "version") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "version":
		fmt.Println("wabsync", wabsync.Version)
		return
	case "migrate":
		if err := runMigrate(args); err != nil {
			fmt.Fprintln(os.Stderr, "wabsync migrate:", err)
			os.Exit(1)
		}
		return
	}
	cfg, err := ParseConfig(args, os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wabsync:", err)
		os.Exit(2)
	}
	m := NewMain(cfg, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Run(ctx); err != nil {
		m.Logger.Error("start failed", "err", err)
		m.Close()
		os.Exit(1)
	}
	<-ctx.Done()
	m.Logger.Info("shutting down")
	if err := m.Close(); err != nil {
		m.Logger.Error("shutdown", "err", err)
		os.Exit(1)
	}
}

func runMigrate(args []string) error {
	cfg, err := ParseConfig(args, os.Getenv)
	if err != nil {
		return err
	}
	ctx := context.Background()
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{DataDir: cfg.DataDir})
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("applied %d migration(s)\n", n)
	return nil
}

// Main is the whole server, wired. Tests start the very same wiring on
// port 0 with a temporary directory.
type Main struct {
	Config Config
	Logger *slog.Logger
	// Out is where the generated admin token is printed once.
	Out io.Writer

	DB       *store.DB
	Sessions *session.Manager
	Sandbox  *sandbox.Network
	Bus      *eventbus.Bus
	API      *httpapi.Server
	Limiter  *ratelimit.Limiter
	// authLimiter counts failed authentications per client address.
	authLimiter *ratelimit.Limiter
	Blobs       *media.Store
	Webhooks    *webhook.Dispatcher

	listener net.Listener
	server   *http.Server
	closers  []func()

	// Test hooks, set before Run: clock replaces the database's clock (and
	// so the webhook dispatcher's); with webhooksManual the dispatcher is
	// not run, and the test drives it with Webhooks.RunOnce; syncLog
	// replaces the fdatasync of SQLite's log (a failing disk).
	clock          func() time.Time
	webhooksManual bool
	syncLog        func(*os.File) error
	// pruneEvery replaces how often expired Idempotency-Key records are
	// deleted (idempotencyPruneEvery).
	pruneEvery time.Duration
}

// idempotencyPruneEvery is how often each node deletes the Idempotency-Key
// records past their 24 hours; several nodes doing it at once is harmless.
const idempotencyPruneEvery = 10 * time.Minute

// NewMain returns a Main that logs to logOut.
func NewMain(cfg Config, logOut io.Writer) *Main {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(logOut, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(logOut, opts)
	}
	return &Main{Config: cfg, Logger: slog.New(h).With("node", cfg.NodeID), Out: logOut}
}

// Addr returns the address the server listens on (after Run).
func (m *Main) Addr() string { return m.listener.Addr().String() }

// URL returns the server's base URL (after Run).
func (m *Main) URL() string { return "http://" + m.listener.Addr().String() }

// Run opens the database, migrates it, starts the services and begins
// serving. It returns once the server listens.
func (m *Main) Run(ctx context.Context) error {
	cfg := m.Config
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{Logger: m.Logger, DataDir: cfg.DataDir, SyncLog: m.syncLog})
	if err != nil {
		return err
	}
	m.DB = db
	if m.clock != nil {
		db.Now = m.clock
	}
	if n, err := db.Migrate(ctx); err != nil {
		return err
	} else if n > 0 {
		m.Logger.Info("database migrated", "applied", n, "dialect", db.Dialect())
	}
	tok, err := db.EnsureAdminToken(ctx, cfg.AdminToken)
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	if tok != "" {
		fmt.Fprintf(m.Out, "\n  WabSync generated an admin token. It is shown only this once; keep it safe:\n\n    %s\n\n", tok)
	}

	m.Bus = eventbus.New()
	// A claim outlives the longest an endpoint's queue can take to drain;
	// a node that dies loses its claims when they lapse.
	claim := max(15*time.Second, 18*cfg.WebhookTimeout)
	m.Webhooks = webhook.NewDispatcher(db, webhook.Options{AllowPrivate: cfg.AllowPrivateURLs, Logger: m.Logger,
		Timeout: cfg.WebhookTimeout, Lease: claim})
	db.OnEvent = m.Bus.Publish
	// The dispatcher looks when deliveries were queued, not at every event
	// (most events go to no webhook; each look is a query).
	db.OnDeliveries = m.Webhooks.Notify
	if !m.webhooksManual {
		go m.Webhooks.Run(context.Background()) // returns when Close is called
	}

	lim, err := ratelimit.New(ratelimit.Config{Limit: cfg.RateLimit, Window: cfg.RateWindow, RedisURL: cfg.RedisURL,
		RedisPrefix: cfg.redisPrefix, Logger: m.Logger})
	if err != nil {
		return fmt.Errorf("rate limiter: %w", err)
	}
	m.Limiter = lim
	// Failed authentications count per client address, in a budget of
	// their own (shared through Redis too).
	authPrefix := cfg.redisPrefix
	if authPrefix == "" {
		authPrefix = ratelimit.DefaultRedisPrefix
	}
	authLim, err := ratelimit.New(ratelimit.Config{Limit: cfg.AuthFailLimit, Window: cfg.AuthFailWindow, RedisURL: cfg.RedisURL,
		RedisPrefix: authPrefix + ":authfail", Logger: m.Logger})
	if err != nil {
		return fmt.Errorf("failed-authentication limiter: %w", err)
	}
	m.authLimiter = authLim

	blobs, err := media.NewStore(filepath.Join(cfg.DataDir, "media"))
	if err != nil {
		return fmt.Errorf("media store: %w", err)
	}
	m.Blobs = blobs
	keyHex, err := db.Setting(ctx, "media_link_key", func() string { return wabsync.RandomBase62(48) })
	if err != nil {
		return fmt.Errorf("media link key: %w", err)
	}
	signer := media.NewSigner([]byte(keyHex))
	fetcher := media.NewFetcher(blobs, safehttp.NewClient(safehttp.Options{AllowPrivate: cfg.AllowPrivateURLs,
		Timeout: 60 * time.Second, MaxRedirects: media.FetchMaxRedirects}), cfg.MaxUpload)
	db.Decorate = func(msg *wabsync.Message) {
		if msg.Media != nil && msg.Direction == wabsync.DirectionIn {
			msg.Media.URL = signer.URL(m.publicURL(), msg.ID, mediaLinkTTL, time.Now())
		}
	}

	if err := db.OpenMailbox(ctx); err != nil {
		return err
	}
	m.Sandbox = sandbox.NewNetwork(db, sandbox.Options{QRTTL: cfg.QRTTL})
	pool, dialect, ownPool, err := db.Pool()
	if err != nil {
		return err
	}
	if ownPool {
		m.closers = append(m.closers, func() { pool.Close() })
	}
	wm, err := whatsmeow.NewFactory(ctx, pool, dialect, m.Logger, whatsmeow.Options{DeviceName: "WabSync", AllowPrivateProxy: cfg.AllowPrivateURLs})
	if err != nil {
		return fmt.Errorf("whatsmeow device store: %w", err)
	}
	factories := map[string]wabsync.EngineFactory{wabsync.EngineSandbox: m.Sandbox, wabsync.EngineWhatsmeow: wm}

	m.API = httpapi.New(httpapi.Config{MaxUpload: cfg.MaxUpload, PublicURL: cfg.PublicURL, AllowPrivateURLs: cfg.AllowPrivateURLs,
		MetricsPublic: cfg.MetricsPublic, MinFreeDisk: cfg.MinFreeDisk, FreeDisk: m.freeDisk(),
		MaxStreams: cfg.MaxStreams, MaxStreamsPerToken: cfg.MaxStreamsPerToken,
		ReadTimeout: cfg.ReadTimeout, UploadMinRate: cfg.UploadMinRate}, db, lim, httpapi.Deps{AuthFailures: authLim}, m.Logger)
	m.Sessions = session.NewManager(session.Options{DB: db, Factories: factories, Logger: m.Logger,
		ReconnectBase: cfg.ReconnectBase, SendRate: cfg.SendRate, SendBurst: cfg.SendBurst,
		OnTokensChanged: m.API.ForgetSessionTokens, Blobs: blobOpener{blobs},
		OnDelete: func(ctx context.Context, s *wabsync.Session) {
			if s.Engine == wabsync.EngineWhatsmeow && s.DeviceJID != "" {
				if err := wm.DeleteDevice(ctx, s.DeviceJID); err != nil {
					m.Logger.Warn("deleting the whatsmeow device", "session_id", s.ID, "err", err)
				}
			}
		},
		NodeID: cfg.NodeID, LeaseTTL: cfg.LeaseTTL, Capacity: cfg.NodeCapacity, SingleNode: db.Dialect() == store.SQLite})
	db.OnMessageQueued = m.Sessions.Wake
	m.API.SetMedia(httpapi.MediaDeps{Blobs: blobs, Fetcher: fetcher, Signer: signer})
	m.API.SetDocs(apidocs.Handler(api.YAML()))
	m.API.SetDashboard(dashboard.Handler())
	m.API.SetSessions(m.Sessions)
	m.API.SetEventBus(m.Bus)
	m.API.SetSandbox(m.Sandbox)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (WABSYNC_ADDR): %w", cfg.Addr, err)
	}
	m.listener = ln
	m.server = &http.Server{
		Handler:           m.API,
		ReadHeaderTimeout: 10 * time.Second,
		// Uploads lift the read timeout while their body keeps a minimum
		// rate; event streams lift both timeouts.
		ReadTimeout:    cfg.ReadTimeout,
		WriteTimeout:   10 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(m.Logger.Handler(), slog.LevelDebug),
	}
	m.server.RegisterOnShutdown(m.API.CloseStreams)
	m.API.Registry().MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "wabsync_node_sessions", Help: "Sessions this node runs now (holds the lease of).",
	}, func() float64 { return float64(m.Sessions.Running()) }))
	go func() {
		if err := m.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("http server", "err", err)
		}
	}()
	nodeURL := cfg.NodeURL
	if nodeURL == "" {
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		nodeURL = "http://127.0.0.1:" + port
	}
	m.Sessions.SetAddress(nodeURL)
	httpapi.NodeAliveWithin = 2 * m.Sessions.LeaseTTL()
	if db.Dialect() == store.Postgres {
		// Several nodes may share this database: requests for sessions that
		// another node runs are forwarded there, and nodes wake each other.
		m.API.SetNode(cfg.NodeID)
		lctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			db.Listen(lctx, []string{store.ChanOutbox, store.ChanEvents, store.ChanMail, store.ChanLeases, store.ChanTokens, store.ChanSessions}, m.onNotify)
		}()
		m.closers = append(m.closers, func() { cancel(); <-done })
	}
	m.startBlobCollector()
	m.startPruning()
	if err := m.Sessions.Resume(ctx); err != nil {
		m.Logger.Error("resuming sessions", "err", err)
	}
	m.Logger.Info("wabsync serving", "addr", ln.Addr().String(), "database", db.Dialect(), "data_dir", absPath(cfg.DataDir), "version", wabsync.Version)
	return nil
}

// freeDisk measures the free space of the data directory's disk and, when
// it lies elsewhere, of the SQLite file's.
func (m *Main) freeDisk() func() (uint64, error) {
	dirs := []string{m.Config.DataDir}
	if d := m.DB.Dir(); d != "" {
		dirs = append(dirs, d)
	}
	return func() (uint64, error) { return store.FreeSpace(dirs...) }
}

// startPruning runs the database's pruning of expired records until Close.
func (m *Main) startPruning() {
	every := m.pruneEvery
	if every <= 0 {
		every = idempotencyPruneEvery
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.DB.PruneEvery(ctx, every)
	}()
	m.closers = append(m.closers, func() { cancel(); <-done })
}

// onNotify handles a notification from another node.
func (m *Main) onNotify(channel, payload string) {
	switch channel {
	case store.ChanOutbox:
		m.Sessions.Wake(payload)
	case store.ChanEvents:
		m.Bus.Poke(payload)
		m.Webhooks.Notify()
	case store.ChanMail:
		m.Sandbox.Wake(payload)
	case store.ChanLeases:
		m.Sessions.Kick()
	case store.ChanTokens:
		m.API.ForgetSessionTokens(payload)
	case store.ChanSessions:
		m.DB.SessionsChanged()
	}
}

// mediaLinkTTL is how long the signed media links in events work: longer
// than webhook retries last, so a late delivery still has a working link.
const mediaLinkTTL = 7 * 24 * time.Hour

// publicURL is the base of signed links: WABSYNC_PUBLIC_URL, or the
// listening address.
func (m *Main) publicURL() string {
	if m.Config.PublicURL != "" {
		return m.Config.PublicURL
	}
	if m.listener == nil {
		return "http://localhost:8080"
	}
	_, port, _ := net.SplitHostPort(m.listener.Addr().String())
	return "http://localhost:" + port
}

type blobOpener struct{ s *media.Store }

func (b blobOpener) OpenBlob(key string) (io.ReadCloser, error) { return b.s.Open(key) }

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// Close shuts down in a fixed order: stop accepting HTTP requests (and
// finish those in flight), stop the sessions (senders drain, engines
// close), stop webhook workers, then close the database.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if m.API != nil {
		m.API.SetReady(false)
	}
	if m.server != nil {
		_ = m.server.Shutdown(ctx)
	}
	if m.Sessions != nil {
		m.Sessions.Close(ctx)
	}
	if m.Webhooks != nil {
		// In-flight attempts finish and are recorded; unstarted claims are
		// handed back for the next start (or another node).
		m.Webhooks.Close()
	}
	for i := len(m.closers) - 1; i >= 0; i-- {
		m.closers[i]()
	}
	if m.Limiter != nil {
		_ = m.Limiter.Close()
	}
	if m.authLimiter != nil {
		_ = m.authLimiter.Close()
	}
	if m.DB != nil {
		return m.DB.Close()
	}
	return nil
}
