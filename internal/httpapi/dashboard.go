package httpapi

import (
	"net/http"

	"github.com/wabsync/wabsync"
)

// dashboardRoutes are the web dashboard's page and assets. They are public:
// the page signs in with a token the person types, kept in the browser.
func (s *Server) dashboardRoutes() []route {
	return []route{
		{"GET /{$}", public, s.handleDashboard},
		{"GET /assets/{path}", public, s.handleDashboard},
	}
}

// SetDashboard sets the handler of the web dashboard (/ and /assets/…).
func (s *Server) SetDashboard(h http.Handler) { s.dashboard = h }

func (s *Server) handleDashboard(w http.ResponseWriter, r *http.Request) error {
	if s.dashboard == nil {
		return wabsync.NotFound("Dashboard")
	}
	s.dashboard.ServeHTTP(w, r)
	return nil
}
