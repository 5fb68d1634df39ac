// Package ratelimit limits how many requests each API token may make per
// window, in memory on one node or shared through Redis across nodes.
//
// It is built on github.com/go-chi/httprate, so the headers it sets are
// exactly httprate's: X-RateLimit-Limit, X-RateLimit-Remaining,
// X-RateLimit-Reset (Unix seconds when the current window ends) and, when a
// request is refused, Retry-After (the window length in seconds). httprate
// counts with a sliding window: the previous window's count still weighs in,
// in proportion to how much of it overlaps the last Window, so a client that
// used its whole budget gets it back gradually, not all at once at Reset.
//
// With a Redis URL the counts live in Redis (github.com/go-chi/httprate-redis)
// and every node sees the same budget. When Redis cannot be reached, each node
// keeps serving on counts of its own in memory until Redis is back, and logs
// the outage once.
package ratelimit

import (
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/httprate"
)

// Defaults of Config, the documented defaults of WABSYNC_RATE_LIMIT and
// WABSYNC_RATE_WINDOW.
const (
	DefaultLimit       = 1000
	DefaultWindow      = time.Minute
	DefaultRedisPrefix = "wabsync:ratelimit"
)

// Config configures a Limiter. The zero value is valid: DefaultLimit requests
// per DefaultWindow, in memory, logging to slog.Default().
type Config struct {
	// Limit is the number of requests allowed per Window per key
	// (WABSYNC_RATE_LIMIT). Zero means DefaultLimit.
	Limit int
	// Window is the length of a rate-limit window (WABSYNC_RATE_WINDOW), at
	// least one second. Zero means DefaultWindow.
	Window time.Duration
	// RedisURL, when set, shares the counts across nodes through Redis
	// (WABSYNC_REDIS_URL): redis://[user:password@]host[:port][/db],
	// rediss:// for TLS, or unix:///path. Empty: in memory only.
	RedisURL string
	// RedisPrefix is the prefix of the Redis keys. Zero means
	// DefaultRedisPrefix. Deployments sharing one Redis database keep their
	// budgets apart with different prefixes.
	RedisPrefix string
	// Logger receives Redis outages and recoveries. Nil means slog.Default().
	Logger *slog.Logger
}

// numShards is the number of httprate.RateLimiters a Limiter spreads its keys
// over. Each httprate.RateLimiter serializes all its keys behind one mutex
// (held across both Redis round trips with a Redis counter), so a single one
// would make every request of the node wait in one line. A key always maps to
// the same shard, so each key is still counted atomically on this node.
const numShards = 64

// Header names, in the canonical form net/http stores and sends anyway
// ("X-RateLimit-Limit" goes on the wire as "X-Ratelimit-Limit" either way).
// Handing httprate canonical names spares net/http a canonicalization, and an
// allocation, per header and request.
const (
	headerLimit      = "X-Ratelimit-Limit"
	headerRemaining  = "X-Ratelimit-Remaining"
	headerIncrement  = "X-Ratelimit-Increment"
	headerReset      = "X-Ratelimit-Reset"
	headerRetryAfter = "Retry-After"
)

// Limiter counts requests per key and tells whether each may proceed. It is
// safe for concurrent use.
type Limiter struct {
	limit  int
	window time.Duration
	log    *slog.Logger
	seed   maphash.Seed
	shards [numShards]*httprate.RateLimiter
	redis  *redisBackend // nil in memory
}

// New returns a Limiter for cfg. It fails on an invalid configuration,
// including a RedisURL that cannot be parsed, but not because Redis is
// unreachable: then it logs a warning and counts in memory until Redis
// answers.
func New(cfg Config) (*Limiter, error) {
	if cfg.Limit == 0 {
		cfg.Limit = DefaultLimit
	}
	if cfg.Limit < 0 {
		return nil, fmt.Errorf("ratelimit: WABSYNC_RATE_LIMIT must be positive, got %d", cfg.Limit)
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Window < time.Second {
		// Retry-After and X-RateLimit-Reset are whole seconds.
		return nil, fmt.Errorf("ratelimit: WABSYNC_RATE_WINDOW must be at least 1s, got %s", cfg.Window)
	}
	if cfg.RedisPrefix == "" {
		cfg.RedisPrefix = DefaultRedisPrefix
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	l := &Limiter{
		limit:  cfg.Limit,
		window: cfg.Window,
		log:    cfg.Logger.With("component", "ratelimit"),
		seed:   maphash.MakeSeed(),
	}

	opts := []httprate.Option{
		httprate.WithResponseHeaders(httprate.ResponseHeaders{
			Limit:      headerLimit,
			Remaining:  headerRemaining,
			Increment:  headerIncrement,
			Reset:      headerReset,
			RetryAfter: headerRetryAfter,
		}),
		httprate.WithErrorHandler(l.counterError),
	}
	if cfg.RedisURL != "" {
		rb, err := newRedisBackend(cfg, l.log)
		if err != nil {
			return nil, err
		}
		l.redis = rb
		// One counter, and so one Redis client and one fallback state, for
		// all shards.
		opts = append(opts, httprate.WithLimitCounter(rb.counter))
	}
	for i := range l.shards {
		// In memory, each shard gets a counter of its own (httprate's default),
		// so shards do not contend on one counter's lock either.
		l.shards[i] = httprate.NewRateLimiter(cfg.Limit, cfg.Window, opts...)
	}
	if l.redis != nil {
		l.redis.probe(cfg.Window)
	}
	return l, nil
}

// Allow counts one request for key and reports whether it may proceed. It
// always sets X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset
// on w's headers; when key is over the limit it also sets Retry-After and
// returns false, and the caller writes its own 429 response.
//
// key identifies the budget, typically the token's id. It is hashed before it
// is stored in memory or in Redis.
func (l *Limiter) Allow(w http.ResponseWriter, r *http.Request, key string) bool {
	rl := l.shards[maphash.String(l.seed, key)%numShards]
	if !rl.OnLimit(w, r, key) {
		return true
	}
	// httprate reports limit minus the sliding-window rate, which goes below
	// zero when nodes sharing Redis let requests through at the same time.
	if v := w.Header()[headerRemaining]; len(v) > 0 && strings.HasPrefix(v[0], "-") {
		v[0] = "0"
	}
	return false
}

// counterError is httprate's error handler. Neither the in-memory counter nor
// the Redis counter with its in-memory fallback returns errors, so this does
// not happen; if it does, the request is refused like one over the limit,
// with the headers that go with it, and nothing is written to w.
func (l *Limiter) counterError(w http.ResponseWriter, r *http.Request, err error) {
	h := w.Header()
	h.Set(headerRemaining, "0")
	h.Set(headerRetryAfter, strconv.Itoa(int(l.window.Seconds())))
	l.log.Error("ratelimit: counting failed, request refused", "error", l.redact(err))
}

// Limit returns the number of requests allowed per window per key.
func (l *Limiter) Limit() int { return l.limit }

// Window returns the length of a window.
func (l *Limiter) Window() time.Duration { return l.window }

// Shared reports whether the limiter counts in Redis right now: false in
// memory, and while Redis is unreachable.
func (l *Limiter) Shared() bool {
	return l.redis != nil && !l.redis.counter.IsFallbackActivated()
}

// Close releases the Redis connections, if any. Allow must not be called
// after Close.
func (l *Limiter) Close() error {
	if l.redis == nil {
		return nil
	}
	return l.redis.close()
}

func (l *Limiter) redact(err error) string {
	if err == nil {
		return ""
	}
	if l.redis == nil {
		return err.Error()
	}
	return l.redis.redact(err.Error())
}
