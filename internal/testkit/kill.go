package testkit

// Kill ends the server at once with SIGKILL, as a crash would: no graceful shutdown, no
// goodbye to anyone. Stop afterwards is harmless.
func (s *Server) Kill() {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.unlock()
	s.unlock = func() {}
}
