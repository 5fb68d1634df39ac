package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/engine/sandbox"
)

// SandboxService is the admin side of the sandbox network.
type SandboxService interface {
	Scan(ctx context.Context, qr string) (string, error)
	Drop(sessionID string, d time.Duration) error
	Inject(ctx context.Context, toPhone string, p *sandbox.Packet) error
}

// SetSandbox enables the sandbox routes' service.
func (s *Server) SetSandbox(sb SandboxService) { s.sandbox = sb }

func (s *Server) sandboxRoutes() []route {
	return []route{
		{"POST /api/v1/sandbox/scan", adminOnly, s.handleSandboxScan},
		{"POST /api/v1/sandbox/sessions/{session}/drop", adminOnly, s.handleSandboxDrop},
	}
}

type scanRequest struct {
	QR string `json:"qr"`
}

func (s *Server) handleSandboxScan(w http.ResponseWriter, r *http.Request) error {
	var req scanRequest
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	if req.QR == "" || len(req.QR) > 1000 {
		return fieldError(wabsync.EValidation, "qr", "is required: the raw QR string from GET …/qr")
	}
	id, err := s.sandbox.Scan(r.Context(), req.QR)
	if err != nil {
		return err
	}
	sess, err := s.db.GetSession(r.Context(), id)
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, "Scanned; the session is linking", sess)
	return nil
}

type dropRequest struct {
	DownForMS int64 `json:"down_for_ms"`
}

func (s *Server) handleSandboxDrop(w http.ResponseWriter, r *http.Request) error {
	id, err := sessionParam(r)
	if err != nil {
		return err
	}
	var req dropRequest
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	if req.DownForMS < 0 || req.DownForMS > 600000 {
		return fieldError(wabsync.EValidation, "down_for_ms", "must be from 0 to 600000")
	}
	sess, err := s.db.GetSession(r.Context(), id)
	if err != nil {
		return err
	}
	if sess.Engine != wabsync.EngineSandbox {
		return wabsync.Errorf(wabsync.EConflict, "Only sandbox sessions can be dropped.")
	}
	if err := s.sandbox.Drop(id, time.Duration(req.DownForMS)*time.Millisecond); err != nil {
		return err
	}
	respond(w, http.StatusOK, "Dropped", map[string]any{"session_id": id, "down_for_ms": req.DownForMS})
	return nil
}
