package server

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// bucket is a token bucket: a burst of burst requests, refilled at rate per second. Its zero
// value is full. It belongs to one connection's read side (no locking).
type bucket struct {
	used float64   // tokens spent and not yet refilled
	last time.Time // when used was last brought up to date
}

// allow spends one token at now and reports whether there was one.
func (b *bucket) allow(now time.Time, rate float64, burst int) bool {
	if !b.last.IsZero() {
		if dt := now.Sub(b.last).Seconds(); dt > 0 {
			b.used = max(0, b.used-dt*rate)
		}
	}
	b.last = now
	if b.used+1 > float64(burst) {
		return false
	}
	b.used++
	return true
}

// Request limits per connection (Options): what a client may ask of the history store and
// the hub, so one socket cannot stall the channels of others.
const (
	// DefaultHistoryRequestsPerSecond and DefaultHistoryRequestBurst bound history reads
	// (channel_history requests and subscriptions with rewind) per connection.
	DefaultHistoryRequestsPerSecond = 10
	DefaultHistoryRequestBurst      = 50
	// DefaultResumeRequestsPerMinute bounds sockudo:resume requests per connection (a burst
	// of as many).
	DefaultResumeRequestsPerMinute = 10
	// DefaultMaxSubscriptionsPerConnection caps the channels one connection is subscribed to.
	DefaultMaxSubscriptionsPerConnection = 1000
)

// allowHistory spends a history-read token of c's.
func (c *conn) allowHistory() bool {
	o := &c.srv.opts
	if o.HistoryRequestsPerSecond < 0 {
		return true
	}
	return c.histBucket.allow(o.Now(), float64(o.HistoryRequestsPerSecond), o.HistoryRequestBurst)
}

// allowResume spends a resume token of c's; a refusal pauses reading (see allowHistoryRead).
func (c *conn) allowResume() bool {
	o := &c.srv.opts
	if o.ResumeRequestsPerMinute < 0 {
		return true
	}
	if c.resumeBucket.allow(o.Now(), float64(o.ResumeRequestsPerMinute)/60, o.ResumeRequestsPerMinute) {
		return true
	}
	c.readPause = min(time.Second, time.Duration(float64(time.Minute)/float64(o.ResumeRequestsPerMinute)))
	return false
}

// DefaultServerHistoryReadsPerCPU is the server-wide history-read rate per CPU
// (Options.ServerHistoryReadsPerSecond's default is this times Options.CPUs). A full page (100
// messages) costs about a millisecond of CPU to read and encode, so history requests take at
// most about a tenth of the CPUs.
const DefaultServerHistoryReadsPerCPU = 100

// sharedBucket is a bucket shared by every connection.
type sharedBucket struct {
	mu sync.Mutex
	b  bucket
}

// allowServerHistory spends a token of the server-wide history-read rate.
func (c *conn) allowServerHistory() bool {
	o := &c.srv.opts
	if o.ServerHistoryReadsPerSecond < 0 {
		return true
	}
	sb := &c.srv.historyRate
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.b.allow(o.Now(), float64(o.ServerHistoryReadsPerSecond), serverHistoryBurst(o.ServerHistoryReadsPerSecond))
}

// serverHistoryBurst is the server-wide bucket's depth: a twentieth of a second's worth of
// reads (at least one). A deep bucket would let the reads saved up while flooding sockets
// are paused run back to back, tens of milliseconds of CPU at once, and every other
// channel's deliveries would wait behind them; a shallow one spreads the same rate evenly.
func serverHistoryBurst(perSecond int) int {
	return max(1, perSecond/20)
}

// allowHistoryRead applies the connection's history-read rate, then the server's, and
// returns the refusal, nil when the read may go ahead.
// A refused request also pauses reading the connection (readPause) until its own bucket
// has a token again (or a second when the server-wide rate refused it), so a socket that floods is
// read no faster than its rate and costs the server little more than that. The pause is at
// most a second: the server's clock (Options.Now) may be another than the timers'.
func (c *conn) allowHistoryRead() *protocol.Error {
	if !c.allowHistory() {
		c.readPause = min(time.Second, time.Duration(float64(time.Second)/float64(c.srv.opts.HistoryRequestsPerSecond)))
		return c.historyLimited()
	}
	if !c.allowServerHistory() {
		c.readPause = time.Second
		return &protocol.Error{Code: protocol.CodeClientEventRefused, Message: "Server busy: too many history requests, retry later"}
	}
	return nil
}

// withHistorySlot runs read (a history read: channel_history, a subscription with rewind, a
// resume) holding one of the server's history slots, waiting for one. At most half the
// CPUs' worth of connections read history at a time, so a flood of history requests from
// many sockets cannot take every core from the fan-out of other channels: the flooding
// sockets' read sides wait (and TCP pushes back on them) while publishes go on.
func (c *conn) withHistorySlot(read func()) {
	c.srv.historySlots <- struct{}{}
	c.inHistorySlot = true
	defer func() {
		c.inHistorySlot = false
		<-c.srv.historySlots
	}()
	read()
}

// ResumeBytesPerChannel is what one channel's position may take in a sockudo:resume
// message, as the Sockudo clients send it: sockudo-js puts the positions in the data as a
// JSON string (every quote escaped), so a channel of the longest name (200 bytes) with a
// stream id, a message id (UUIDs) and a 20-digit serial takes about 380 bytes.
const ResumeBytesPerChannel = 512

// DefaultMaxResumeMessageBytes is Options.MaxResumeMessageBytes' default for a connection
// allowed maxSubs subscriptions (negative: unlimited): room for one resume naming every
// channel the connection may hold, up to channels.MaxResumeChannels, plus the envelope.
func DefaultMaxResumeMessageBytes(maxSubs int) int {
	n := channels.MaxResumeChannels
	if maxSubs > 0 {
		n = min(n, maxSubs)
	}
	return n*ResumeBytesPerChannel + 1024
}

// DefaultMaxRefusedRequests is Options.MaxRefusedRequests' default: a burst of 50
// refusals, refilled at one a second. A client over the subscription cap by 50 channels, or
// one retrying a refused request once a second, stays connected; a socket flooding history
// requests at 30 a second is closed within seconds.
const DefaultMaxRefusedRequests = 50

// refusalRefillPerSecond is the rate at which a connection's refusal budget refills.
const refusalRefillPerSecond = 1

// maxMessage is the largest message c may send: MaxResumeMessageBytes on a protocol 2
// connection (a sockudo:resume may be that large; anything else over MaxMessageBytes closes
// the connection once read), MaxMessageBytes otherwise.
func (c *conn) maxMessage() int {
	if c.version == protocol.V2 {
		return c.srv.opts.MaxResumeMessageBytes
	}
	return c.srv.opts.MaxMessageBytes
}

// refusal counts a refused request (a message answered with an error frame of code 4301 or
// 4100) against c's budget; past it the connection is closed with 4301 (after the answers
// already queued) and its read side stops (readStop).
func (c *conn) refusal() {
	o := &c.srv.opts
	if o.MaxRefusedRequests < 0 || c.refusals.allow(o.Now(), refusalRefillPerSecond, o.MaxRefusedRequests) {
		return
	}
	c.closeWith(protocol.Errorf(protocol.CodeClientEventRefused, "Too many refused requests: at most %d (one more a second); closing the connection", o.MaxRefusedRequests), reasonRefusals)
	c.readStop = errTooManyRefusals
}

// errTooManyRefusals ends the read side of a connection closed by refusal.
var errTooManyRefusals = errors.New("server: too many refused requests")

// tooBig closes c with 1009 for a message of size bytes over its limit (after it was read:
// a resume-sized message that is not a resume, or one that inflates past the limit); the
// read side stops (readStop).
func (c *conn) tooBig(size int) {
	c.srv.metrics.MessageIn(c.appID, size)
	c.closeProtocol(1009, fmt.Sprintf("message too big: the limit is %d bytes", c.srv.opts.MaxMessageBytes), reasonTooBig)
	c.readStop = errMessageTooBig
}

// errMessageTooBig ends the read side of a connection closed for a message too big.
var errMessageTooBig = errors.New("server: message too big")
