package channels

// Pacing a connection's resume work.
//
// One sockudo:resume names up to MaxResumeChannels channels, and each costs the server the
// channel's turn, a state read and a replay: run back to back, a storm of such resumes
// takes a core from the fan-out of every other channel in long stretches. ConnOptions.Pace,
// when set, is asked before each channel a resume works on and may block there: the server
// uses it to spread all connections' resume work at a server-wide rate, so a storm waits on
// its own connections' read sides (and TCP pushes back on them) while other channels'
// messages go out. Pace is called holding nothing: no channel turn, no lock of the
// connection's; when it reports false (the connection is going away) the resume stops
// without answering.

// paceResume asks the connection's pacer for the next channel of a resume; false: stop.
func (c *Conn) paceResume() bool {
	if c.pace == nil {
		return true
	}
	return c.pace(1)
}
