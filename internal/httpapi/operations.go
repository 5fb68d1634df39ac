package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/api"
	"github.com/wabsync/wabsync/internal/store"
)

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	respond(w, http.StatusOK, "OK", map[string]string{"status": "ok", "version": wabsync.Version})
	return nil
}

// handleReady answers 200 when this node can do its work: the database
// answers and stores (no write failed with a fault lately) and the disk has
// more than MinFreeDisk free. Otherwise 503, naming each failing check.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) error {
	if !s.ready.Load() {
		return &wabsync.Error{Code: wabsync.EUnavailable, Message: "The server is shutting down.",
			Details: map[string]string{"server": "shutting down"}}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	failing := map[string]string{}
	var msgs []string
	if err := s.db.Ping(ctx); err != nil {
		failing["database"], msgs = s.databaseState(r, err), append(msgs, wabsync.ErrorMessage(err))
	}
	if state := s.diskState(r); state != "ok" {
		failing["disk"], msgs = state, append(msgs, "The data directory's disk is (nearly) full.")
	}
	if len(failing) > 0 {
		return &wabsync.Error{Code: wabsync.EUnavailable, Message: strings.Join(msgs, " "), Details: failing}
	}
	respond(w, http.StatusOK, "Ready", map[string]any{"status": "ready", "checks": map[string]string{"database": "ok", "disk": "ok"}})
	return nil
}

// databaseState words a failed Ping: "unreachable" (a *store.Fault: it
// does not answer) or "failing" (it answers but does not store: a log that
// failed to sync, or writes failing with a fault).
func (s *Server) databaseState(r *http.Request, err error) string {
	var fault *store.Fault
	if errors.As(err, &fault) {
		s.logger.WarnContext(r.Context(), "readiness: database unreachable", "fault", fault.Kind)
		return "unreachable"
	}
	var e *wabsync.Error
	if errors.As(err, &e) {
		return "failing" // logged where it arose
	}
	s.logger.WarnContext(r.Context(), "readiness: database unreachable", "err", err)
	return "unreachable"
}

// diskState is "ok", "low" (less free than MinFreeDisk) or "unknown" (it
// could not be measured, which is logged).
func (s *Server) diskState(r *http.Request) string {
	if s.cfg.MinFreeDisk <= 0 || s.cfg.FreeDisk == nil {
		return "ok"
	}
	free, err := s.cfg.FreeDisk()
	if err != nil {
		s.logger.WarnContext(r.Context(), "readiness: measuring free disk space", "err", err)
		return "unknown"
	}
	if free < uint64(s.cfg.MinFreeDisk) {
		return "low"
	}
	return "ok"
}

func (s *Server) handleOpenAPIYAML(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	_, _ = w.Write(api.YAML())
	return nil
}

func (s *Server) handleOpenAPIJSON(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(api.JSON())
	return nil
}

// SetDocs sets the handler of the human API reference page (/docs).
func (s *Server) SetDocs(h http.Handler) { s.docs = h }

func (s *Server) handleDocs(w http.ResponseWriter, r *http.Request) error {
	if s.docs == nil {
		return wabsync.NotFound("Documentation page")
	}
	s.docs.ServeHTTP(w, r)
	return nil
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) error {
	s.metrics.handler.ServeHTTP(w, r)
	return nil
}
