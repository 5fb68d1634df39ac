package httpapi

// webhookRoutes returns the webhook routes (API.md, "Webhooks").
func (s *Server) webhookRoutes() []route {
	return nil
}
