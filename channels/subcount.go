package channels

// Subscriptions reports how many channels the connection is subscribed to and whether name
// is one of them, for a per-connection cap on subscriptions. Reader goroutine only.
func (c *Conn) Subscriptions(name string) (n int, subscribed bool) {
	return c.channels.len(), c.channels.has(name)
}
