package replication

// OrderChannels reports how many channels of the app have ordering state (order.go), so
// tests can prove it shrinks again.
func (cn *Node) OrderChannels(appID string) int { return cn.ord[appID].size() }

// GapWait, OrderIdle: the ordering waits (order.go).
const (
	GapWait   = gapWait
	OrderIdle = orderIdle
)

// HealthInterval is how often a node polls its broker's health (node.go).
const HealthInterval = healthInterval
