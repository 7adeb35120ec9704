// Command pwload is a Pusher protocol 7 (and V2) load generator: subscribers over WebSocket,
// publishers over the signed HTTP API or client events, and a report of connect time,
// deliveries per second, delivered %, end-to-end latency, server RSS per connection and
// errors. Run it with --help for the scenarios and flags; bench/RESULTS.md has figures.
package main

import (
	"os"

	"github.com/pushwire/pushwire/bench/load"
)

func main() {
	os.Exit(load.Main(os.Args[1:], os.Stdout, os.Stderr))
}
