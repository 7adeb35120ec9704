package server

// pollHooks connect a netpoller to its owner.
type pollHooks struct {
	// spawn starts a goroutine the owner joins (the loop, each readiness callback).
	// Default: go.
	spawn func(func())
	// waitErr gets each failed epoll_wait with the number of failures in a row, before the
	// retry. Default: nothing.
	waitErr func(err error, failures int)
	// fatal gets the error when the netpoller gives up. Default: nothing.
	fatal func(error)
}

func (h pollHooks) withDefaults() pollHooks {
	if h.spawn == nil {
		h.spawn = func(f func()) { go f() }
	}
	if h.waitErr == nil {
		h.waitErr = func(error, int) {}
	}
	if h.fatal == nil {
		h.fatal = func(error) {}
	}
	return h
}
