// Package history stores the messages of channels that keep history and hands out their
// serials: Memory (the default, bounded per channel, gone on restart). It implements
// channels.History; history/historytest is the behaviour every implementation passes.
package history
