package server

// The steps of a drain a load balancer can follow: SetUnready turns
// /readyz to 503 while everything keeps serving (the drain delay), then
// StopAccepting closes the listener before connections are closed in
// batches (session.Hub.CloseGradually), and Shutdown finishes.

// SetUnready makes Ready report false from now on, without refusing
// anything: the start of a drain.
func (s *Server) SetUnready() { s.unready.Store(true) }

// StopAccepting closes the listening socket; connected clients are
// untouched. Shutdown does it too.
func (s *Server) StopAccepting() { s.acc.close(s.reactor) }
