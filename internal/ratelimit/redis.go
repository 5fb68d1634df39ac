package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/httprate"
	httprateredis "github.com/go-chi/httprate-redis"
	"github.com/redis/go-redis/v9"
)

// Redis client settings used unless the URL sets them (redis.ParseURL reads
// dial_timeout, read_timeout, write_timeout, max_retries, ... from the query).
// Short timeouts and no retries, as httprate-redis recommends, so that a
// request notices quickly that Redis is gone and falls back to memory.
const (
	redisDialTimeout = 500 * time.Millisecond
	redisIOTimeout   = 250 * time.Millisecond
	redisClientName  = "wabsync-ratelimit"
)

// warnEvery bounds how often an outage is logged at warn level. Redis that
// answers PING but fails commands (out of memory, a read-only replica) makes
// httprate-redis switch between Redis and memory every 200 ms; those switches
// are logged at debug level until warnEvery has passed since the last warning.
const warnEvery = time.Minute

// fallbackCounter is what httprate-redis's counter offers besides
// httprate.LimitCounter.
type fallbackCounter interface {
	httprate.LimitCounter
	IsFallbackActivated() bool
}

// redisBackend is the Redis side of a Limiter: the client, httprate-redis's
// counter on it (with its in-memory fallback), and the outage log.
type redisBackend struct {
	client   *redis.Client
	counter  fallbackCounter
	password string
	log      *slog.Logger
	closed   atomic.Bool
	lastErr  atomic.Pointer[string] // last Redis error, redacted

	mu        sync.Mutex // guards the fields below
	down      bool       // counting in memory
	downSince time.Time
	lastWarn  time.Time
	quiet     bool // this outage was logged at debug level only
}

func newRedisBackend(cfg Config, log *slog.Logger) (*redisBackend, error) {
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the whole URL, password included
		}
		msg := err.Error()
		for _, secret := range urlSecrets(cfg.RedisURL) {
			msg = strings.ReplaceAll(msg, secret, "xxxxx")
		}
		return nil, fmt.Errorf("ratelimit: WABSYNC_REDIS_URL is not a valid Redis URL: %s", msg)
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = redisDialTimeout
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = redisIOTimeout
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = redisIOTimeout
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = -1
	}
	if opts.DialerRetries == 0 {
		// go-redis otherwise dials five times, 100 ms apart, before a command
		// fails: close to half a second for a request that finds Redis gone.
		opts.DialerRetries = 1
	}
	if opts.ClientName == "" {
		opts.ClientName = redisClientName
	}
	routeRedisLogs(log)

	b := &redisBackend{
		password: opts.Password,
		log:      log.With("redis", opts.Addr),
	}
	b.client = redis.NewClient(opts)
	b.client.AddHook(closeHook{&b.closed})
	b.counter = httprateredis.NewCounter(&httprateredis.Config{
		WindowLength:     cfg.Window,
		PrefixKey:        cfg.RedisPrefix,
		Client:           b.client,
		OnError:          b.onError,
		OnFallbackChange: b.onFallbackChange,
	})
	return b, nil
}

// probe reads one counter so that New finds out whether Redis answers: if it
// does not, the fallback is on, and logged, before the first request.
func (b *redisBackend) probe(window time.Duration) {
	now := time.Now().UTC().Truncate(window)
	_, _, _ = b.counter.Get("probe", now, now.Add(-window))
	if !b.counter.IsFallbackActivated() {
		b.log.Info("ratelimit: counting requests in Redis, shared by all nodes")
	}
}

// onError is called by httprate-redis for every failed Redis command, before
// it switches to memory; the last error goes into the outage's log line.
func (b *redisBackend) onError(err error) {
	msg := b.redact(err.Error())
	b.lastErr.Store(&msg)
}

// onFallbackChange is called by httprate-redis when it starts counting in
// memory (activated) and when Redis answers again.
func (b *redisBackend) onFallbackChange(activated bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if activated {
		if b.down {
			return
		}
		b.down, b.downSince = true, now
		var reason string
		if p := b.lastErr.Swap(nil); p != nil {
			reason = *p
		}
		if b.closed.Load() {
			return
		}
		if !b.lastWarn.IsZero() && now.Sub(b.lastWarn) < warnEvery {
			b.quiet = true
			b.log.Debug("ratelimit: Redis failed again; counting requests in memory on this node", "error", reason)
			return
		}
		b.quiet, b.lastWarn = false, now
		b.log.Warn("ratelimit: Redis unreachable; counting requests in memory on this node until it is back", "error", reason)
		return
	}
	if !b.down {
		return
	}
	b.down = false
	if b.closed.Load() {
		return
	}
	outage := now.Sub(b.downSince).Round(time.Millisecond)
	if b.quiet {
		b.log.Debug("ratelimit: Redis reachable again", "outage", outage)
		return
	}
	b.log.Info("ratelimit: Redis reachable again; counting requests in Redis", "outage", outage)
}

// redact hides the Redis password in s.
func (b *redisBackend) redact(s string) string {
	if b.password == "" {
		return s
	}
	return strings.ReplaceAll(s, b.password, "xxxxx")
}

func (b *redisBackend) close() error {
	if b.closed.Swap(true) {
		return nil
	}
	return b.client.Close()
}

// closeHook answers PING without Redis once the Limiter is closed. While it
// counts in memory, httprate-redis pings Redis every 200 ms from a goroutine
// until a PING succeeds, and it has no way to stop it: on a closed client
// that goroutine would run forever.
type closeHook struct{ closed *atomic.Bool }

func (h closeHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h closeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.closed.Load() && cmd.Name() == "ping" {
			return nil
		}
		return next(ctx, cmd)
	}
}

func (h closeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// urlSecrets returns what may be secret in a Redis URL: the userinfo and the
// password, as written and percent-decoded. It works on URLs that do not
// parse, since it is used to clean the parser's error.
func urlSecrets(raw string) []string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	i := strings.LastIndex(rest, "@")
	if i <= 0 {
		return nil
	}
	userinfo := rest[:i]
	secrets := []string{userinfo}
	if _, pw, ok := strings.Cut(userinfo, ":"); ok && pw != "" {
		secrets = append(secrets, pw)
	}
	for _, s := range secrets {
		if d, err := url.PathUnescape(s); err == nil && d != s {
			secrets = append(secrets, d)
		}
	}
	return secrets
}

// go-redis logs through one process-wide logger, to stderr by default: about
// one line per failed dial while Redis is down. Its lines go to the most
// recent Limiter's logger at debug level instead; the outage itself is logged
// once, at warn level, by onFallbackChange.
var (
	redisLogOnce sync.Once
	redisLogger  atomic.Pointer[slog.Logger]
)

func routeRedisLogs(log *slog.Logger) {
	redisLogger.Store(log)
	redisLogOnce.Do(func() { redis.SetLogger(redisLogAdapter{}) })
}

type redisLogAdapter struct{}

func (redisLogAdapter) Printf(ctx context.Context, format string, v ...any) {
	log := redisLogger.Load()
	if log == nil || !log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	log.DebugContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)), "source", "go-redis")
}
