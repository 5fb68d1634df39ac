package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the server's configuration: every field is a WABSYNC_*
// environment variable and a flag of `wabsync serve` (the flag wins).
type Config struct {
	Addr             string
	DataDir          string
	DatabaseURL      string
	AdminToken       string
	PublicURL        string
	RedisURL         string
	RateLimit        int
	RateWindow       time.Duration
	AllowPrivateURLs bool
	MaxUpload        int64
	MinFreeDisk      int64
	LogLevel         string
	LogFormat        string
	NodeID           string
	MetricsPublic    bool
	SendRate         float64
	SendBurst        int
	NodeURL          string
	WebhookTimeout   time.Duration
	NodeCapacity     int
	LeaseTTL         time.Duration
	MediaGCInterval  time.Duration
	MediaGCGrace     time.Duration
	// MaxStreams and MaxStreamsPerToken cap the open event streams of a
	// node, in all and per token.
	MaxStreams         int
	MaxStreamsPerToken int
	// ReadTimeout bounds the reading of a request, body included, except on
	// upload routes, which must keep UploadMinRate (bytes per second).
	ReadTimeout   time.Duration
	UploadMinRate int64
	// AuthFailLimit failed authentications per AuthFailWindow from one
	// client address; past it the address gets 429.
	AuthFailLimit  int
	AuthFailWindow time.Duration

	// Internal knobs for tests (not configurable from outside).
	ReconnectBase time.Duration
	QRTTL         time.Duration
	// redisPrefix, when set, replaces the default prefix of the rate-limit
	// keys in Redis, so that concurrent test runs sharing one Redis keep
	// their budgets apart.
	redisPrefix string
}

type setting struct {
	env, flag, def, help string
	set                  func(c *Config, v string) error
}

var settings = []setting{
	{"WABSYNC_ADDR", "addr", ":8080", "address to listen on", func(c *Config, v string) error { c.Addr = v; return nil }},
	{"WABSYNC_DATA_DIR", "data-dir", "./data", "directory for the SQLite database and media", func(c *Config, v string) error { c.DataDir = v; return nil }},
	{"WABSYNC_DATABASE_URL", "database-url", "", "sqlite:///path.db or postgres://… (default: SQLite in the data dir)", func(c *Config, v string) error {
		if v != "" && !strings.HasPrefix(v, "sqlite:") && !strings.HasPrefix(v, "postgres://") && !strings.HasPrefix(v, "postgresql://") {
			return fmt.Errorf("must start with sqlite:// or postgres://")
		}
		c.DatabaseURL = v
		return nil
	}},
	{"WABSYNC_ADMIN_TOKEN", "admin-token", "", "admin token (WBA|…); generated and printed once if unset", func(c *Config, v string) error {
		if v != "" && (!strings.HasPrefix(v, "WBA|") || len(v) < 24) {
			return fmt.Errorf("must start with WBA| and have at least 20 characters after it")
		}
		c.AdminToken = v
		return nil
	}},
	{"WABSYNC_PUBLIC_URL", "public-url", "", "base URL of signed links, e.g. https://wa.example.com", func(c *Config, v string) error {
		if v != "" && !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
			return fmt.Errorf("must be an http(s) URL")
		}
		c.PublicURL = strings.TrimRight(v, "/")
		return nil
	}},
	{"WABSYNC_REDIS_URL", "redis-url", "", "redis://… to share rate limits between nodes", func(c *Config, v string) error {
		if v != "" && !strings.HasPrefix(v, "redis://") && !strings.HasPrefix(v, "rediss://") {
			return fmt.Errorf("must start with redis:// or rediss://")
		}
		c.RedisURL = v
		return nil
	}},
	{"WABSYNC_RATE_LIMIT", "rate-limit", "1000", "requests per window per token", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("must be a positive integer")
		}
		c.RateLimit = n
		return nil
	}},
	{"WABSYNC_RATE_WINDOW", "rate-window", "1m", "rate limit window (Go duration)", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			return fmt.Errorf("must be a duration of at least 1s, like 1m")
		}
		c.RateWindow = d
		return nil
	}},
	{"WABSYNC_ALLOW_PRIVATE_URLS", "allow-private-urls", "false", "let webhooks, media URLs and session proxies target private networks", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("must be true or false")
		}
		c.AllowPrivateURLs = b
		return nil
	}},
	{"WABSYNC_MAX_UPLOAD", "max-upload", "67108864", "largest file in bytes", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1024 {
			return fmt.Errorf("must be a number of bytes of at least 1024")
		}
		c.MaxUpload = n
		return nil
	}},
	{"WABSYNC_MIN_FREE_DISK", "min-free-disk", "268435456", "free bytes on the data directory's disk below which /ready answers 503 (0: not checked)", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("must be a number of bytes (0 or more)")
		}
		c.MinFreeDisk = n
		return nil
	}},
	{"WABSYNC_LOG_LEVEL", "log-level", "info", "debug, info, warn or error", func(c *Config, v string) error {
		switch v {
		case "debug", "info", "warn", "error":
			c.LogLevel = v
			return nil
		}
		return fmt.Errorf("must be debug, info, warn or error")
	}},
	{"WABSYNC_LOG_FORMAT", "log-format", "text", "text or json", func(c *Config, v string) error {
		if v != "text" && v != "json" {
			return fmt.Errorf("must be text or json")
		}
		c.LogFormat = v
		return nil
	}},
	{"WABSYNC_NODE_ID", "node-id", "", "this node's id (default: host name + random suffix)", func(c *Config, v string) error { c.NodeID = v; return nil }},
	{"WABSYNC_NODE_URL", "node-url", "", "where other nodes reach this node's API, e.g. http://10.0.0.5:8080 (default: http://127.0.0.1:<port>)", func(c *Config, v string) error {
		if v != "" && !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
			return fmt.Errorf("must be an http(s) URL")
		}
		c.NodeURL = strings.TrimRight(v, "/")
		return nil
	}},
	{"WABSYNC_NODE_CAPACITY", "node-capacity", "10000", "most sessions this node takes over on its own", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("must be a positive integer")
		}
		c.NodeCapacity = n
		return nil
	}},
	{"WABSYNC_LEASE_TTL", "lease-ttl", "15s", "how long a dead node keeps its sessions before others take them over", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > 10*time.Minute {
			return fmt.Errorf("must be a duration from 1s to 10m, like 15s")
		}
		c.LeaseTTL = d
		return nil
	}},
	{"WABSYNC_WEBHOOK_TIMEOUT", "webhook-timeout", "10s", "how long a webhook receiver has to answer each delivery", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 100*time.Millisecond || d > 5*time.Minute {
			return fmt.Errorf("must be a duration from 100ms to 5m, like 10s")
		}
		c.WebhookTimeout = d
		return nil
	}},
	{"WABSYNC_METRICS_PUBLIC", "metrics-public", "true", "serve /metrics without the admin token", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("must be true or false")
		}
		c.MetricsPublic = b
		return nil
	}},
	{"WABSYNC_SEND_RATE", "send-rate", "20", "messages per second each session sends to WhatsApp", func(c *Config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 1000 {
			return fmt.Errorf("must be a number from 0 to 1000")
		}
		c.SendRate = f
		return nil
	}},
	{"WABSYNC_SEND_BURST", "send-burst", "20", "messages a session may send at once before pacing", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return fmt.Errorf("must be an integer from 1 to 1000")
		}
		c.SendBurst = n
		return nil
	}},
	{"WABSYNC_MEDIA_GC_INTERVAL", "media-gc-interval", "1h", "how often this node removes stored files no message refers to", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute || d > 7*24*time.Hour {
			return fmt.Errorf("must be a duration from 1m to 168h, like 1h")
		}
		c.MediaGCInterval = d
		return nil
	}},
	{"WABSYNC_MEDIA_GC_GRACE", "media-gc-grace", "1h", "how old an unreferenced stored file must be before it is removed", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute || d > 30*24*time.Hour {
			return fmt.Errorf("must be a duration from 1m to 720h, like 1h")
		}
		c.MediaGCGrace = d
		return nil
	}},
	{"WABSYNC_MAX_STREAMS", "max-streams", "1000", "most event streams open on this node", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000000 {
			return fmt.Errorf("must be an integer from 1 to 1000000")
		}
		c.MaxStreams = n
		return nil
	}},
	{"WABSYNC_MAX_STREAMS_PER_TOKEN", "max-streams-per-token", "10", "most event streams one session token may have open on this node", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000000 {
			return fmt.Errorf("must be an integer from 1 to 1000000")
		}
		c.MaxStreamsPerToken = n
		return nil
	}},
	{"WABSYNC_READ_TIMEOUT", "read-timeout", "30s", "how long a client has to send a request, body included (uploads: see WABSYNC_UPLOAD_MIN_RATE)", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 100*time.Millisecond || d > 10*time.Minute {
			return fmt.Errorf("must be a duration from 100ms to 10m, like 30s")
		}
		c.ReadTimeout = d
		return nil
	}},
	{"WABSYNC_UPLOAD_MIN_RATE", "upload-min-rate", "16384", "bytes per second a file upload must average, after WABSYNC_READ_TIMEOUT of grace", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > 1<<30 {
			return fmt.Errorf("must be a number of bytes per second from 1 to 1073741824")
		}
		c.UploadMinRate = n
		return nil
	}},
	{"WABSYNC_AUTH_FAIL_LIMIT", "auth-fail-limit", "30", "failed authentications per window from one client address before it gets 429", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("must be a positive integer")
		}
		c.AuthFailLimit = n
		return nil
	}},
	{"WABSYNC_AUTH_FAIL_WINDOW", "auth-fail-window", "1m", "window of WABSYNC_AUTH_FAIL_LIMIT (Go duration)", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > 24*time.Hour {
			return fmt.Errorf("must be a duration from 1s to 24h, like 1m")
		}
		c.AuthFailWindow = d
		return nil
	}},
}

// ParseConfig reads the environment (getenv) and then args as flags. An
// invalid value is an error naming its variable.
func ParseConfig(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("wabsync serve", flag.ContinueOnError)
	vals := make([]*string, len(settings))
	for i, s := range settings {
		def := s.def
		if v := getenv(s.env); v != "" {
			def = v
		}
		vals[i] = fs.String(s.flag, def, s.help+" ("+s.env+")")
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	for i, s := range settings {
		if err := s.set(&c, *vals[i]); err != nil {
			return c, fmt.Errorf("invalid %s (flag -%s): %v", s.env, s.flag, err)
		}
	}
	if c.NodeID == "" {
		h, _ := os.Hostname()
		c.NodeID = h + "-" + strconv.FormatInt(time.Now().UnixNano()%100000, 36)
	}
	return c, nil
}
