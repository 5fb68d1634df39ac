package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/api"
)

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	respond(w, http.StatusOK, "OK", map[string]string{"status": "ok", "version": wabsync.Version})
	return nil
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) error {
	if !s.ready.Load() {
		return &wabsync.Error{Code: wabsync.EUnavailable, Message: "The server is shutting down.",
			Details: map[string]string{"server": "shutting down"}}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.db.Ping(ctx); err != nil {
		var e *wabsync.Error
		if errors.As(err, &e) {
			// It says what is wrong, safely, and was logged where it arose.
			return &wabsync.Error{Code: wabsync.EUnavailable, Message: e.Message, Details: map[string]string{"database": "failing"}}
		}
		s.logger.WarnContext(r.Context(), "readiness: database unreachable", "err", err)
		return &wabsync.Error{Code: wabsync.EUnavailable, Message: "The database is unreachable.",
			Details: map[string]string{"database": "unreachable"}}
	}
	respond(w, http.StatusOK, "Ready", map[string]any{"status": "ready", "checks": map[string]string{"database": "ok"}})
	return nil
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
