// Package httpapi is WabSync's HTTP API: the route table, middleware (request
// ids, recovery, metrics, authentication, rate limits), the envelopes of
// API.md, and one file of thin handlers per resource.
package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/eventbus"
	"github.com/wabsync/wabsync/internal/keylock"
	"github.com/wabsync/wabsync/internal/ratelimit"
	"github.com/wabsync/wabsync/internal/store"
)

// Config is the HTTP layer's part of the server configuration.
type Config struct {
	MaxJSON          int64 // largest JSON body without a file (default 1 MiB)
	MaxUpload        int64 // largest file (WABSYNC_MAX_UPLOAD)
	PublicURL        string
	AllowPrivateURLs bool
	MetricsPublic    bool // /metrics without a token
	// MinFreeDisk is the free space, in bytes, below which /ready answers
	// 503 (WABSYNC_MIN_FREE_DISK; 0: not checked), as FreeDisk measures it.
	MinFreeDisk int64
	FreeDisk    func() (uint64, error)
	// MaxStreams and MaxStreamsPerToken cap the event streams open on this
	// node, in all and per session token (zero: the defaults).
	MaxStreams         int
	MaxStreamsPerToken int
	// ReadTimeout is the server's read timeout (WABSYNC_READ_TIMEOUT);
	// upload routes get it as grace on top of UploadMinRate, in bytes per
	// second (WABSYNC_UPLOAD_MIN_RATE). Zero: the defaults.
	ReadTimeout   time.Duration
	UploadMinRate int64
}

// Server serves the API.
type Server struct {
	cfg     Config
	db      *store.DB
	limiter *ratelimit.Limiter
	logger  *slog.Logger
	metrics *metrics
	mux     *http.ServeMux
	handler http.Handler
	deps    Deps

	tokens  sync.Map // token hash → *cachedPrincipal
	bus     *eventbus.Bus
	sandbox SandboxService
	docs    http.Handler
	media   MediaDeps
	// jsonUploads holds a slot per large JSON file upload being read.
	jsonUploads chan struct{}
	// jsonUploadsBy counts them per token (maxJSONUploadsPerToken).
	jsonUploadsMu sync.Mutex
	jsonUploadsBy map[string]int

	nodeID         string
	proxyTransport http.RoundTripper

	streams       *streams
	authGate      *authGate
	closeStreams  sync.Once
	streamsClosed chan struct{}
	ready         atomic.Bool

	dashboard http.Handler

	// msgChanges serialises the edits and revokes of one message (see
	// lockedMessage).
	msgChanges keylock.Locks
}

// Deps are the services the handlers call.
type Deps struct {
	Sessions SessionService
	// AuthFailures counts failed authentications per client address
	// (WABSYNC_AUTH_FAIL_LIMIT); nil: no limit.
	AuthFailures *ratelimit.Limiter
}

type cachedPrincipal struct {
	p       *wabsync.Principal
	expires int64 // unix nanos
}

// tokenCacheTTL bounds how long a resolved token is trusted without asking
// the database. Rotation and deletion evict at once on this node, and on
// the others when notified (ChanTokens); this bound holds only when a node
// missed the notification. api/openapi.yaml (rotateSessionToken) documents it.
const tokenCacheTTL = 5 * time.Second

// New returns a server.
func New(cfg Config, db *store.DB, limiter *ratelimit.Limiter, deps Deps, logger *slog.Logger) *Server {
	if cfg.MaxJSON == 0 {
		cfg.MaxJSON = 1 << 20
	}
	if cfg.MaxUpload == 0 {
		cfg.MaxUpload = 64 << 20
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.UploadMinRate == 0 {
		cfg.UploadMinRate = DefaultUploadMinRate
	}
	s := &Server{cfg: cfg, db: db, limiter: limiter, logger: logger, deps: deps, mux: http.NewServeMux(), streamsClosed: make(chan struct{}),
		streams: newStreams(cfg.MaxStreams, cfg.MaxStreamsPerToken), authGate: newAuthGate(deps.AuthFailures),
		jsonUploads: make(chan struct{}, maxJSONUploads), jsonUploadsBy: map[string]int{}}
	s.metrics = newMetrics(db)
	for _, rt := range s.routes() {
		s.mux.Handle(rt.pattern, s.wrap(rt))
	}
	s.handler = s.requestID(s.recoverer(s.dispatch))
	s.ready.Store(true)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// SetReady marks the server ready or not (not ready while shutting down).
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

// Patterns returns the route table's patterns ("METHOD /path"), for the test
// that compares them with the OpenAPI document.
func (s *Server) Patterns() []string {
	var out []string
	for _, rt := range s.routes() {
		out = append(out, rt.pattern)
	}
	return out
}

type ctxKey int

const requestIDKey ctxKey = iota

func requestIDFrom(ctx context.Context) string {
	v, _ := ctx.Value(requestIDKey).(string)
	return v
}

var ridPrefix = func() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}()
var ridCounter atomic.Uint64

func validRequestID(v string) bool {
	if v == "" || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

func (s *Server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = ridPrefix + "-" + strconv.FormatUint(ridCounter.Add(1), 36)
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

func (s *Server) recoverer(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				// The panic value is logged with the request id; no stack
				// trace goes to the client or the log line.
				s.logger.ErrorContext(r.Context(), "panic in handler", "request_id", requestIDFrom(r.Context()),
					"method", r.Method, "path", r.URL.Path, "panic", slog.AnyValue(v).String())
				s.writeError(w, r, errorf(wabsync.EInternal, "Internal error. The request id identifies it in the server's logs."))
			}
		}()
		next(w, r)
	})
}

// dispatch routes the request, answering unknown routes and wrong methods
// with the error envelope.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		// ServeMux.ServeHTTP (not h) sets the request's path values.
		s.mux.ServeHTTP(w, r)
		return
	}
	// No route matched: let the mux decide between 404, 405 and a redirect,
	// then replace its plain-text body with the envelope. Nothing reads the
	// body.
	dropBody(w, r)
	cw := &captureWriter{header: http.Header{}}
	h.ServeHTTP(cw, r)
	start := time.Now()
	switch cw.status {
	case http.StatusNotFound:
		s.writeError(w, r, errorf(wabsync.ENotFound, "No route matches %s %s.", r.Method, r.URL.Path))
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", cw.header.Get("Allow"))
		s.writeError(w, r, errorf(wabsync.EMethodNotAllowed, "Method %s is not allowed here; see the Allow header.", r.Method))
	default:
		for k, v := range cw.header {
			w.Header()[k] = v
		}
		w.WriteHeader(cw.status)
		_, _ = w.Write(cw.body.Bytes())
	}
	s.metrics.observe("unmatched", r.Method, cw.status, time.Since(start))
}

type captureWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (c *captureWriter) Header() http.Header { return c.header }
func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
}
func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = 200
	}
	if c.body.Len() < 4096 {
		c.body.Write(b)
	}
	return len(b), nil
}

// SetSessions sets the session service.
func (s *Server) SetSessions(svc SessionService) { s.deps.Sessions = svc }
