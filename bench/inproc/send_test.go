package inproc

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wabsync/wabsync"
)

// BenchmarkSendText posts text messages straight into the handler (no
// network, no engine): decode, validate, durable accept, 201 — the server's
// side of bench/messages' closed-loop run, for CPU profiles.
//
//	go test -run '^$' -bench SendText -benchtime 20000x -cpuprofile /tmp/cpu.out ./bench/inproc/
func BenchmarkSendText(b *testing.B) {
	db, api, tok := newAPI(b, wabsync.StatusConnected)
	const body = `{"to":"+14155550123","text":"Hello from the benchmark, a message of ordinary length."}`
	b.Cleanup(func() {
		st := db.WriterStats()
		b.ReportMetric(float64(st.Changes)/float64(max(st.Batches, 1)), "changes/commit")
	})
	b.ReportAllocs()
	b.SetParallelism(32) // 64 requests in flight on 2 cores, as bench/messages
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("POST", "/api/v1/sessions/me/messages/text", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			api.ServeHTTP(w, req)
			if w.Code != 201 {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
		}
	})
}
