package httpapi

import (
	"context"
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
		return errorf(wabsync.EUnavailable, "The server is shutting down.")
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.db.Ping(ctx); err != nil {
		s.logger.WarnContext(r.Context(), "readiness: database unreachable", "err", err)
		return errorf(wabsync.EUnavailable, "The database is unreachable.")
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
