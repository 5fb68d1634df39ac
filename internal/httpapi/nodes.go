package httpapi

import (
	"net/http"
	"time"
)

// NodeAliveWithin is how recent a node's heartbeat must be for it to count
// as alive; Main sets it from the lease TTL.
var NodeAliveWithin = 30 * time.Second

func (s *Server) nodeRoutes() []route {
	return []route{
		{"GET /api/v1/nodes", adminOnly, s.handleListNodes},
	}
}

// handleListNodes lists the nodes sharing the database, their sessions and
// whether they are alive.
func (s *Server) handleListNodes(w http.ResponseWriter, r *http.Request) error {
	nodes, err := s.db.ListNodes(r.Context(), NodeAliveWithin)
	if err != nil {
		return err
	}
	type nodeView struct {
		ID          string    `json:"id"`
		Address     string    `json:"address"`
		Capacity    int       `json:"capacity"`
		Sessions    int       `json:"sessions"`
		Alive       bool      `json:"alive"`
		Stopped     bool      `json:"stopped"`
		Self        bool      `json:"self"`
		StartedAt   time.Time `json:"started_at"`
		HeartbeatAt time.Time `json:"heartbeat_at"`
	}
	items := make([]nodeView, 0, len(nodes))
	for _, n := range nodes {
		items = append(items, nodeView{ID: n.ID, Address: n.Address, Capacity: n.Capacity, Sessions: n.Sessions, Alive: n.Alive,
			Stopped: n.Stopped, Self: n.ID == s.nodeID, StartedAt: n.StartedAt, HeartbeatAt: n.HeartbeatAt})
	}
	respond(w, http.StatusOK, "Nodes", map[string]any{"items": items, "next_cursor": nil, "has_more": false})
	return nil
}
