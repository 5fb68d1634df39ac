//go:build pprof

package main

// Built only with `-tags pprof` (benchmarks set WABSYNC_BENCH_TAGS=pprof):
// the release binary has no profiling endpoint. WABSYNC_PPROF_ADDR names a
// loopback address to serve net/http/pprof on.

import (
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	addr := os.Getenv("WABSYNC_PPROF_ADDR")
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		slog.Error("WABSYNC_PPROF_ADDR must be a loopback address like 127.0.0.1:6060")
		os.Exit(2)
	}
	go func() { _ = http.ListenAndServe(addr, http.DefaultServeMux) }()
}
