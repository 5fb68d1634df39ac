package httpapi

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
)

// access says who may call a route.
type access int

const (
	public      access = iota // no token
	adminOnly                 // the admin token
	sessionAuth               // the admin token, or the token of the session in {session}
	anyToken                  // any valid token
	metricsAuth               // public or admin, as configured
)

// handlerFunc is a handler that returns its error; the wrapper writes it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

type route struct {
	pattern string
	access  access
	h       handlerFunc
}

// routes is the route table: every route the server has, top to bottom.
// api/openapi.yaml must describe exactly these (a test checks it).
func (s *Server) routes() []route {
	rs := []route{
		// Operations.
		{"GET /api/v1/health", public, s.handleHealth},
		{"GET /api/v1/ready", public, s.handleReady},
		{"GET /api/v1/openapi.yaml", public, s.handleOpenAPIYAML},
		{"GET /api/v1/openapi.json", public, s.handleOpenAPIJSON},
		{"GET /docs", public, s.handleDocs},
		{"GET /metrics", metricsAuth, s.handleMetrics},
	}
	rs = append(rs, s.sessionRoutes()...)
	rs = append(rs, s.messageRoutes()...)
	rs = append(rs, s.sandboxRoutes()...)
	rs = append(rs, s.nodeRoutes()...)
	rs = append(rs, s.webhookRoutes()...)
	rs = append(rs, s.dashboardRoutes()...)
	return rs
}

// wrap applies authentication, rate limiting, error writing and metrics to
// one route.
func (s *Server) wrap(rt route) http.Handler {
	label := rt.pattern
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		err := s.serveRoute(sw, r, rt)
		if err != nil {
			if sw.status != 0 {
				// Too late for an envelope: the response has started.
				s.logger.WarnContext(r.Context(), "error after response started", "request_id", requestIDFrom(r.Context()), "err", err)
			} else {
				s.writeError(sw, r, err)
			}
		}
		s.metrics.observe(label, r.Method, sw.code(), time.Since(start))
	})
}

func (s *Server) serveRoute(w http.ResponseWriter, r *http.Request, rt route) error {
	p, err := s.admit(w, r, rt)
	if err == nil {
		err = checkRequestText(r, rt.pattern)
	}
	if err != nil {
		// Refused before the handler: nothing reads the body.
		dropBody(w, r)
		return err
	}
	if p == nil {
		// Public routes take no body.
		if !dropBody(w, r) {
			_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
		}
		return rt.h(w, r)
	}
	s.guardBody(w, r, uploadRoutes[rt.pattern])
	ctx := wabsync.NewContextWithPrincipal(r.Context(), p)
	r = r.WithContext(ctx)
	if ownerRoutes[rt.pattern] && s.nodeID != "" {
		id, err := sessionParam(r)
		if err != nil {
			return err
		}
		if done, err := s.forward(w, r, id, nil); done || err != nil {
			return err
		}
	}
	return rt.h(w, r)
}

// admit authenticates and rate-limits the request, before anything reads
// its body. It returns the caller, or nil on a public route.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, rt route) (*wabsync.Principal, error) {
	acc := rt.access
	if acc == metricsAuth {
		if s.cfg.MetricsPublic {
			acc = public
		} else {
			acc = adminOnly
		}
	}
	if acc == public {
		if s.limiter != nil && !s.limiter.Allow(w, r, "ip:"+clientIP(r)) {
			return nil, errorf(wabsync.ERateLimited, "Too many requests; retry after the time in Retry-After.")
		}
		return nil, nil
	}
	p, err := s.authenticate(w, r)
	if err != nil {
		return nil, err
	}
	if s.limiter != nil && !s.limiter.Allow(w, r, p.TokenID) {
		return nil, errorf(wabsync.ERateLimited, "Too many requests; retry after the time in Retry-After.")
	}
	if acc == adminOnly && !p.Admin {
		return nil, errorf(wabsync.EForbidden, "This route needs the admin token.")
	}
	return p, nil
}

// authenticate resolves the bearer token, through a short-lived cache keyed
// by the token's hash. Failures count against the client's address
// (authGate); an address past the limit is refused before the database is
// asked, unless its token is in the cache (known good).
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*wabsync.Principal, error) {
	tok, ok := bearerToken(r)
	key := store.HashToken(tok)
	if ok {
		if p := s.cachedToken(key); p != nil {
			return p, nil
		}
	}
	ip := clientIP(r)
	if err := s.authGate.check(w, ip); err != nil {
		return nil, err
	}
	p, err := s.resolveToken(r, tok, ok, key)
	var e *wabsync.Error
	if errors.As(err, &e) && e.Code == wabsync.EUnauthorized {
		return nil, s.authGate.fail(w, r, ip, err)
	}
	return p, err
}

// cachedToken returns the cached principal of a token hash, if fresh.
func (s *Server) cachedToken(key string) *wabsync.Principal {
	v, ok := s.tokens.Load(key)
	if !ok {
		return nil
	}
	c := v.(*cachedPrincipal)
	if c.expires > time.Now().UnixNano() {
		return c.p
	}
	s.tokens.Delete(key)
	return nil
}

// resolveToken checks the token's form and asks the database, caching what
// it finds.
func (s *Server) resolveToken(r *http.Request, tok string, ok bool, key string) (*wabsync.Principal, error) {
	if !ok {
		return nil, errorf(wabsync.EUnauthorized, "Send the token as Authorization: Bearer <token>.")
	}
	if len(tok) < 20 || len(tok) > 200 {
		return nil, errorf(wabsync.EUnauthorized, "The token is missing, malformed, unknown or revoked.")
	}
	p, err := s.db.Authenticate(r.Context(), tok)
	if err != nil {
		return nil, err
	}
	s.tokens.Store(key, &cachedPrincipal{p: p, expires: time.Now().UnixNano() + int64(tokenCacheTTL)})
	return p, nil
}

// bearerToken returns the token of the Authorization header.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}

// ForgetSessionTokens evicts cached tokens of a session and makes its open
// event streams check whether they may go on (rotation, deletion). Every
// node calls it: the one that made the change, and the others when notified
// (ChanTokens).
func (s *Server) ForgetSessionTokens(sessionID string) {
	s.tokens.Range(func(k, v any) bool {
		if v.(*cachedPrincipal).p.SessionID == sessionID {
			s.tokens.Delete(k)
		}
		return true
	})
	s.streams.poke(sessionID)
}

// clientIP is the client's address as the per-address limits count it: an
// IPv6 client by its /64, the block one subscriber usually holds whole (one
// per address would let it escape the limits with a new address each time).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	if addr = addr.Unmap(); addr.Is6() {
		return netip.PrefixFrom(addr.WithZone(""), 64).Masked().String()
	}
	return addr.String()
}

// statusWriter records the status code for metrics and error handling.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (SSE flushes).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// sessionParam resolves {session} for the caller: "me" is the session of a
// session token; a session token may only reach its own session, and any
// other id is NOT_FOUND, so that it never learns whether it exists.
func sessionParam(r *http.Request) (string, error) {
	id := r.PathValue("session")
	p := wabsync.PrincipalFromContext(r.Context())
	if p == nil {
		return "", errorf(wabsync.EUnauthorized, "No token.")
	}
	if id == "me" {
		if p.Admin {
			return "", errorf(wabsync.ENotFound, "The admin token has no session of its own; use the session id.")
		}
		return p.SessionID, nil
	}
	if !p.Admin && p.SessionID != id {
		return "", wabsync.NotFound("Session")
	}
	return id, nil
}

// existingSession resolves {session} like sessionParam and checks that the
// session exists (NOT_FOUND otherwise).
func (s *Server) existingSession(r *http.Request) (string, error) {
	id, err := sessionParam(r)
	if err != nil {
		return "", err
	}
	if _, err := s.db.CachedSession(r.Context(), id); err != nil {
		return "", err
	}
	return id, nil
}
