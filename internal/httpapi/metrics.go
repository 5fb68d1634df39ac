package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wabsync/wabsync/internal/store"
)

// metrics holds the HTTP layer's Prometheus collectors, in a registry of
// the server's own (so that tests can run several servers in one process).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	handler  http.Handler
}

func newMetrics(db *store.DB) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wabsync_http_requests_total",
			Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wabsync_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
	}
	batches := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "wabsync_db_write_batches_total",
		Help: "Transactions committed by the group-commit writer.",
	}, func() float64 { return float64(db.WriterStats().Batches) })
	changes := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "wabsync_db_write_changes_total",
		Help: "Changes committed by the group-commit writer (changes / batches = mean batch size).",
	}, func() float64 { return float64(db.WriterStats().Changes) })
	reg.MustRegister(m.requests, m.latency, batches, changes, writerTimings{db},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewDBStatsCollector(db.SQL(), db.Dialect()))
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m
}

// Registry returns the registry, for other packages' collectors.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

func (m *metrics) observe(route, method string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

// writerTimings exports the store writer's timing histograms.
type writerTimings struct{ db *store.DB }

var (
	writeWaitDesc = prometheus.NewDesc("wabsync_db_write_wait_seconds",
		"How long a request's change waited for its group-commit batch to begin.", nil, nil)
	writeCommitDesc = prometheus.NewDesc("wabsync_db_commit_seconds",
		"How long each group-commit batch took to commit (on SQLite without the fsync: wabsync_db_sync_seconds).", nil, nil)
	writeSyncDesc = prometheus.NewDesc("wabsync_db_sync_seconds",
		"SQLite: how long each fsync of the write-ahead log took (one covers every commit before it).", nil, nil)
)

func (c writerTimings) Describe(ch chan<- *prometheus.Desc) {
	ch <- writeWaitDesc
	ch <- writeCommitDesc
	ch <- writeSyncDesc
}

func (c writerTimings) Collect(ch chan<- prometheus.Metric) {
	t := c.db.WriterTimings()
	ch <- constHistogram(writeWaitDesc, t.Wait)
	ch <- constHistogram(writeCommitDesc, t.Commit)
	ch <- constHistogram(writeSyncDesc, t.Sync)
}

func constHistogram(d *prometheus.Desc, h store.Histogram) prometheus.Metric {
	buckets := make(map[float64]uint64, len(store.TimingBuckets))
	var cum uint64
	for i, le := range store.TimingBuckets {
		cum += h.Counts[i]
		buckets[le] = cum
	}
	total := cum + h.Counts[len(h.Counts)-1]
	return prometheus.MustNewConstHistogram(d, total, h.Sum.Seconds(), buckets)
}
