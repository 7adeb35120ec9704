// Package bytebudget owns the server-wide cap on bytes held for input that has not been fully
// received yet: HTTP request bodies being read and WebSocket frames being assembled. Whoever
// holds such bytes reserves them first; past the cap new input waits or is refused, so what
// clients declare (a Content-Length, a frame length) never decides how much memory the
// process holds. It is a counter and nothing else: no I/O, no goroutines.
package bytebudget
