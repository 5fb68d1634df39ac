// Command uploads measures the server's resident memory while it receives
// large base64 files in JSON (issue 16, defect 2): -n uploads of one
// -size file at once, each as {"to": …, "caption": …, "base64": "…"}, with
// and without an Idempotency-Key. For each case a fresh server starts; the
// figure is the peak of its VmRSS (sampled every 10 ms, and VmHWM) minus its
// VmRSS just before the uploads. The multipart case is the reference: it
// has always streamed.
//
//	go run ./bench/uploads                       # 1 and 8 uploads of 60 MiB
//	go run ./bench/uploads -n 8 -size 62914560 -cases json,json-idem,multipart
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wabsync/wabsync/bench/internal/benchutil"
)

var (
	size   = flag.Int("size", 60<<20, "file size in bytes")
	ns     = flag.String("n", "1,8", "uploads at once, one run per value")
	cases  = flag.String("cases", "json,json-idem,multipart", "json, json-idem (with Idempotency-Key), multipart")
	target = flag.Float64("target", 150, "RSS rise in MiB the 8-upload JSON cases must stay within")
)

func main() {
	flag.Parse()
	benchutil.Header("uploads")
	tmp, err := os.MkdirTemp("", "wabsync-bench-")
	benchutil.Check(err)
	benchutil.OnExit(func() { os.RemoveAll(tmp) })
	bin, err := benchutil.BuildServer(tmp)
	benchutil.Check(err)

	// One file, the same for every upload (its blob is stored once: the
	// figure is what receiving costs, not the disk).
	file := make([]byte, *size)
	_, _ = rand.Read(file)
	copy(file, "%PDF-1.7\n")
	b64 := base64.StdEncoding.EncodeToString(file)
	fmt.Printf("file %.1f MiB, base64 %.1f MiB\n", mib(int64(len(file))), mib(int64(len(b64))))

	run := 0
	for _, nv := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(nv))
		benchutil.Check(err)
		for _, c := range strings.Split(*cases, ",") {
			run++
			rise, took, codes := measure(bin, filepath.Join(tmp, strconv.Itoa(run)), strings.TrimSpace(c), n, file, b64)
			verdict := ""
			if n == 8 && strings.HasPrefix(c, "json") {
				verdict = fmt.Sprintf("; target <= %.0f MiB: %s", *target, map[bool]string{true: "met", false: "NOT met"}[rise <= *target])
			}
			fmt.Printf("RESULT uploads %s x%d of %.0f MiB: RSS +%.1f MiB at peak, %.2fs, answers %v%s\n",
				c, n, mib(int64(len(file))), rise, took.Seconds(), codes, verdict)
		}
	}
}

// measure starts a server, sends n uploads at once, and returns the peak
// rise of its RSS in MiB, the time the uploads took, and their statuses.
func measure(bin, dataDir, kind string, n int, file []byte, b64 string) (float64, time.Duration, map[int]int) {
	srv := benchutil.NewServer(bin, dataDir, "WABSYNC_RATE_LIMIT=1000000000")
	benchutil.Check(srv.Start())
	defer srv.Stop()
	c := benchutil.NewClient(n)
	c.HC.Timeout = 10 * time.Minute
	sess, err := c.LinkedSession(benchutil.Ctx, srv.URL, "up", map[string]any{})
	benchutil.Check(err)
	time.Sleep(2 * time.Second)
	base, err := benchutil.RSS(srv.PID())
	benchutil.Check(err)

	// Reset the kernel's peak (VmHWM) to the present, so that it covers
	// the uploads only.
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", srv.PID()), []byte("5"), 0)
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if r, err := benchutil.RSS(srv.PID()); err == nil && r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := upload(c.HC, srv.URL, sess.Token, kind, i, file, b64)
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	took := time.Since(t0)
	close(stop)
	<-sampled
	if hwm := vmHWM(srv.PID()); hwm > peak.Load() {
		peak.Store(hwm)
	}
	return mib(peak.Load() - base), took, codes
}

// upload sends one file and returns the status (0 for a transport error).
func upload(hc *http.Client, baseURL, token, kind string, i int, file []byte, b64 string) int {
	var body io.Reader
	var length int64
	ct := "application/json"
	if kind == "multipart" {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("to", "+14155550123")
		w, _ := mw.CreateFormFile("file", "big.pdf")
		_, _ = w.Write(file)
		_ = mw.Close()
		body, ct, length = &buf, mw.FormDataContentType(), int64(buf.Len())
	} else {
		head := fmt.Sprintf(`{"to": "+14155550123", "caption": "upload %d", "filename": "big.pdf", "base64": "`, i)
		body = io.MultiReader(strings.NewReader(head), strings.NewReader(b64), strings.NewReader(`"}`))
		length = int64(len(head) + len(b64) + 2)
	}
	req, _ := http.NewRequest("POST", baseURL+"/api/v1/sessions/me/messages/file", body)
	req.ContentLength = length // stated, as clients send it
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+token)
	if kind == "json-idem" {
		req.Header.Set("Idempotency-Key", "bench-"+strconv.Itoa(i))
	}
	resp, err := hc.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "upload:", err)
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// vmHWM is the peak resident set size of process pid in bytes (0 if unknown).
func vmHWM(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			if fs := strings.Fields(rest); len(fs) > 0 {
				kb, _ := strconv.ParseInt(fs[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
