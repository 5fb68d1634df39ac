// Package benchutil holds what the benchmark programs under bench/ share:
// building and running the real wabsync binary on a loopback port, a
// bare net/http baseline server, closed- and open-loop load generators,
// latency percentiles, resident memory and the machine's load average.
package benchutil

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// AdminToken is the admin token every benchmark server is started with.
const AdminToken = "WBA|bench-admin-token-0123456789abcdef"

// ModuleRoot returns the directory of the wabsync module (where go.mod is).
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the wabsync module")
	}
	return filepath.Dir(mod), nil
}

// BuildServer builds cmd/wabsync into dir and returns the binary's path.
func BuildServer(dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "wabsync")
	args := []string{"build", "-o", bin}
	if tags := os.Getenv("WABSYNC_BENCH_TAGS"); tags != "" {
		// e.g. pprof: WABSYNC_PPROF_ADDR=127.0.0.1:6060 then serves profiles.
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command("go", append(args, "./cmd/wabsync")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// FreeAddr returns a loopback address with a port nobody listens on now.
func FreeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Server is the wabsync binary running as a child process.
type Server struct {
	Bin  string
	Addr string
	URL  string
	Env  []string // WABSYNC_* settings besides the address and admin token

	cmd  *exec.Cmd
	done chan struct{}
	logs *tailBuffer
}

// NewServer returns a server on a free loopback port with a data directory
// under dataDir; env adds settings (KEY=value).
func NewServer(bin, dataDir string, env ...string) *Server {
	addr := FreeAddr()
	base := []string{
		"WABSYNC_ADDR=" + addr,
		"WABSYNC_DATA_DIR=" + dataDir,
		"WABSYNC_ADMIN_TOKEN=" + AdminToken,
		"WABSYNC_LOG_LEVEL=warn",
	}
	return &Server{Bin: bin, Addr: addr, URL: "http://" + addr, Env: append(base, env...), logs: &tailBuffer{max: 64 << 10}}
}

// Start starts the process and waits until /api/v1/health answers 200.
func (s *Server) Start() error {
	s.cmd = exec.Command(s.Bin, "serve")
	s.cmd.Env = append(os.Environ(), s.Env...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	// The server dies with this program, also when it fails half way.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.cmd, s.done)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/api/v1/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("server exited at start:\n%s", s.logs)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not healthy after 60s: %v\n%s", err, s.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// PID returns the process id, 0 when not running.
func (s *Server) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop sends SIGTERM and waits (at most 30 s, then SIGKILL).
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
	}
}

// Kill ends the process with SIGKILL.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// Logs returns the tail of the server's output.
func (s *Server) Logs() string { return s.logs.String() }

// RSS returns the resident set size (VmRSS) of process pid in bytes.
func RSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fs := strings.Fields(rest)
			kb, err := strconv.ParseInt(fs[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// Metric returns the sum of the samples of a Prometheus metric (by name,
// without labels) from the server's /metrics.
func Metric(c *http.Client, baseURL, name string) (float64, error) {
	resp, err := c.Get(baseURL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var sum float64
	found := false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		fs := strings.Fields(line)
		v, err := strconv.ParseFloat(fs[len(fs)-1], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("no metric %s", name)
	}
	return sum, nil
}

// LoadAvg returns /proc/loadavg's first three fields.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	fs := strings.Fields(string(b))
	if len(fs) < 3 {
		return "?"
	}
	return strings.Join(fs[:3], " ")
}

// CreateDatabase creates a fresh PostgreSQL database on the local server
// (with psql) and returns its URL and a function that drops it.
func CreateDatabase(name string) (string, func(), error) {
	psql := func(sql string) error {
		out, err := exec.Command("psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql).CombinedOutput()
		if err != nil {
			return fmt.Errorf("psql %q: %v: %s", sql, err, out)
		}
		return nil
	}
	_ = psql("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	if err := psql("CREATE DATABASE " + name); err != nil {
		return "", nil, err
	}
	drop := func() { _ = psql("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") }
	return "postgres://postgres@127.0.0.1:5432/" + name + "?sslmode=disable", drop, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// Client is a small API client for the benchmarks: keep-alive, up to conns
// connections to each host.
type Client struct {
	HC *http.Client
}

// NewClient returns a client allowing conns keep-alive connections per host.
func NewClient(conns int) *Client {
	tr := &http.Transport{
		MaxIdleConns:        conns * 4,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &Client{HC: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// Do sends a request with a bearer token and a JSON body (nil for none) and
// returns the status code and body.
func (c *Client) Do(ctx context.Context, method, url, token string, body any) (int, []byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HC.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// Session is a created session with its token.
type Session struct {
	ID, Token, Phone string
}

// CreateSession creates a sandbox session with config cfg through the admin API.
func (c *Client) CreateSession(ctx context.Context, baseURL, name string, cfg map[string]any) (*Session, error) {
	code, body, err := c.Do(ctx, "POST", baseURL+"/api/v1/sessions", AdminToken, map[string]any{"name": name, "engine": "sandbox", "config": cfg})
	if err != nil {
		return nil, err
	}
	if code != 201 {
		return nil, fmt.Errorf("create session: %d %s", code, body)
	}
	var r struct {
		Data struct {
			Session struct {
				ID string `json:"id"`
			} `json:"session"`
			Token string `json:"token"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	return &Session{ID: r.Data.Session.ID, Token: r.Data.Token}, nil
}

// Connect starts a session.
func (c *Client) Connect(ctx context.Context, baseURL, id string) error {
	code, body, err := c.Do(ctx, "POST", baseURL+"/api/v1/sessions/"+id+"/connect", AdminToken, nil)
	if err != nil {
		return err
	}
	if code/100 != 2 {
		return fmt.Errorf("connect: %d %s", code, body)
	}
	return nil
}

// WaitConnected polls a session until it is connected and returns its phone.
func (c *Client) WaitConnected(ctx context.Context, baseURL, id string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		code, body, err := c.Do(ctx, "GET", baseURL+"/api/v1/sessions/"+id, AdminToken, nil)
		if err == nil && code == 200 {
			var r struct {
				Data struct {
					Status string `json:"status"`
					Phone  string `json:"phone"`
				} `json:"data"`
			}
			if json.Unmarshal(body, &r) == nil && r.Data.Status == "connected" {
				return r.Data.Phone, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("session %s not connected after %v (last: %d %s %v)", id, timeout, code, body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// LinkedSession creates a sandbox session with auto_link (plus cfg), connects
// it and waits until it is connected.
func (c *Client) LinkedSession(ctx context.Context, baseURL, name string, cfg map[string]any) (*Session, error) {
	if cfg == nil {
		cfg = map[string]any{}
	}
	cfg["auto_link"] = true
	s, err := c.CreateSession(ctx, baseURL, name, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.Connect(ctx, baseURL, s.ID); err != nil {
		return nil, err
	}
	s.Phone, err = c.WaitConnected(ctx, baseURL, s.ID, 60*time.Second)
	return s, err
}

// CountSessions counts sessions with the given status by paging the list.
func (c *Client) CountSessions(ctx context.Context, baseURL, status string) (int, error) {
	n := 0
	cursor := ""
	for {
		u := baseURL + "/api/v1/sessions?limit=100&status=" + status
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		code, body, err := c.Do(ctx, "GET", u, AdminToken, nil)
		if err != nil {
			return n, err
		}
		if code != 200 {
			return n, fmt.Errorf("list sessions: %d %s", code, body)
		}
		var r struct {
			Data struct {
				Items      []json.RawMessage `json:"items"`
				NextCursor *string           `json:"next_cursor"`
				HasMore    bool              `json:"has_more"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return n, err
		}
		n += len(r.Data.Items)
		if !r.Data.HasMore || r.Data.NextCursor == nil {
			return n, nil
		}
		cursor = *r.Data.NextCursor
	}
}
