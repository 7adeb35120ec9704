package channels

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/pushwire/pushwire/protocol"
)

// Wildcard subscriptions and metachannels (V2, ws-protocol §3.8).
//
// A wildcard subscription ("ticker:*") is a channel of the registry named by its pattern:
// subscribe, unsubscribe, disconnect and the ack work as for any public channel. A publish
// to a public channel then also reaches the subscribers of every pattern it matches, with
// the message's real channel name. The patterns of an app are indexed by the text before
// and after their '*', so a publish costs one atomic load when the app has no pattern and
// a few map look-ups (one per distinct prefix length and suffix length in use) when it has
// many, never a scan of every pattern.
//
// A metachannel ("[meta]orders") is a channel of the registry too; the lifecycle of the
// channel it watches is sent to it as sockudo_internal:channel_occupied, subscription_count,
// channel_vacated, member_added, member_removed and presence_update.

// subKind says what a subscribed name is.
type subKind uint8

const (
	kindChannel  subKind = iota // an ordinary channel
	kindWildcard                // a wildcard pattern
	kindMeta                    // a metachannel
)

func kindOf(name string) subKind {
	if _, ok := protocol.MetaChannelBase(name); ok {
		return kindMeta
	}
	if protocol.IsWildcard(name) {
		return kindWildcard
	}
	return kindChannel
}

// wildIndex indexes an app's subscribed wildcard patterns.
type wildIndex struct {
	n  atomic.Int32 // patterns indexed: the publish path's fast check
	mu sync.RWMutex
	// byPrefix maps the text before '*' to the patterns with that prefix.
	byPrefix map[string]*suffixSet
	// prefixLens is the sorted distinct prefix lengths in use; prefixLenN counts each.
	prefixLens []int
	prefixLenN map[int]int
}

type suffixSet struct {
	bySuffix map[string]string // text after '*' -> pattern
	lens     []int             // sorted distinct suffix lengths
	lenN     map[int]int
}

func addLen(lens []int, count map[int]int, l int) []int {
	if count[l]++; count[l] == 1 {
		i, _ := slices.BinarySearch(lens, l)
		lens = slices.Insert(lens, i, l)
	}
	return lens
}

func delLen(lens []int, count map[int]int, l int) []int {
	if count[l]--; count[l] <= 0 {
		delete(count, l)
		if i, ok := slices.BinarySearch(lens, l); ok {
			lens = slices.Delete(lens, i, i+1)
		}
	}
	return lens
}

// add indexes a pattern (callers add each pattern once, while its channel exists).
func (w *wildIndex) add(pattern string) {
	p, s := protocol.SplitWildcard(pattern)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byPrefix == nil {
		w.byPrefix, w.prefixLenN = map[string]*suffixSet{}, map[int]int{}
	}
	set := w.byPrefix[p]
	if set == nil {
		set = &suffixSet{bySuffix: map[string]string{}, lenN: map[int]int{}}
		w.byPrefix[p] = set
		w.prefixLens = addLen(w.prefixLens, w.prefixLenN, len(p))
	}
	if _, dup := set.bySuffix[s]; dup {
		return
	}
	set.bySuffix[s] = pattern
	set.lens = addLen(set.lens, set.lenN, len(s))
	w.n.Add(1)
}

// remove forgets a pattern.
func (w *wildIndex) remove(pattern string) {
	p, s := protocol.SplitWildcard(pattern)
	w.mu.Lock()
	defer w.mu.Unlock()
	set := w.byPrefix[p]
	if set == nil {
		return
	}
	if _, ok := set.bySuffix[s]; !ok {
		return
	}
	delete(set.bySuffix, s)
	set.lens = delLen(set.lens, set.lenN, len(s))
	w.n.Add(-1)
	if len(set.bySuffix) == 0 {
		delete(w.byPrefix, p)
		w.prefixLens = delLen(w.prefixLens, w.prefixLenN, len(p))
	}
}

// size is the number of indexed patterns.
func (w *wildIndex) size() int { return int(w.n.Load()) }

// match appends to dst the patterns that channel matches.
func (w *wildIndex) match(channel string, dst []string) []string {
	w.mu.RLock()
	defer w.mu.RUnlock()
	for _, pl := range w.prefixLens {
		if pl > len(channel) {
			break
		}
		set := w.byPrefix[channel[:pl]]
		if set == nil {
			continue
		}
		for _, sl := range set.lens {
			if pl+sl > len(channel) {
				break
			}
			if pat, ok := set.bySuffix[channel[len(channel)-sl:]]; ok {
				dst = append(dst, pat)
			}
		}
	}
	return dst
}

// wildcardChannels returns the pattern channels whose patterns match a channel a message is
// delivered on; nil (after one atomic load) when the app has no pattern. No lock is held on
// return.
func (a *appState) wildcardChannels(name string) []*channel {
	if a.wild.size() == 0 || !protocol.WildcardDeliverable(name) {
		return nil
	}
	var buf [4]string
	pats := a.wild.match(name, buf[:0])
	if len(pats) == 0 {
		return nil
	}
	out := make([]*channel, 0, len(pats))
	for _, p := range pats {
		if ch := a.lookup(p); ch != nil {
			out = append(out, ch)
		}
	}
	return out
}

// fanoutWildcards delivers a message to the subscribers of the matching pattern channels.
// A connection gets it once: not again when its exact subscription (exact, whose lock the
// caller holds, may be nil) already delivered it, nor from a second pattern. The filters of
// its subscriptions are ORed, as in Sockudo. v2 is the encoded V2 form.
func fanoutWildcards(m *protocol.Message, exact *channel, pats []*channel, sender *Conn, exceptSocketID string, v2 []byte) {
	var seen map[*Conn]struct{}
	var doc *protocol.LazyDocument
	skip := func(c *Conn) bool {
		if exact != nil {
			if s, ok := exact.subs[c]; ok && (c != sender || c.echo) {
				if s.filter == nil {
					return true
				}
				if doc == nil {
					d := protocol.NewLazyDocument(m)
					doc = &d
				}
				if s.filter.MatchMessage(m, doc) {
					return true
				}
			}
		}
		if len(pats) > 1 {
			if _, dup := seen[c]; dup {
				return true
			}
			if seen == nil {
				seen = map[*Conn]struct{}{}
			}
			seen[c] = struct{}{}
		}
		return false
	}
	for _, p := range pats {
		p.mu.RLock()
		p.fanoutTo(m, sender, exceptSocketID, nil, v2, skip, everyWindow)
		p.mu.RUnlock()
	}
}

// checkWildcard admits a wildcard subscription: V2 only, a valid pattern, within the
// connection's limit.
func (c *Conn) checkWildcard(pattern string) *protocol.Error {
	if !c.v2 {
		return &protocol.Error{Code: protocol.CodeChannelError, Message: "Wildcard subscriptions are only supported on protocol V2"}
	}
	if err := protocol.ValidateWildcard(pattern, c.app.cfg.MaxChannelNameLength); err != nil {
		return err
	}
	if !c.channels.has(pattern) && c.wildcards >= c.app.cfg.MaxWildcardSubscriptionsPerConnection {
		return protocol.Errorf(protocol.CodeChannelError, "Wildcard subscription %q refused: this connection already holds %d wildcard subscriptions, the limit",
			protocol.Truncate(pattern, 64), c.app.cfg.MaxWildcardSubscriptionsPerConnection)
	}
	return nil
}

// checkMeta admits a metachannel subscription: V2 only, a valid channel name behind
// "[meta]". Watching a public channel is open to every V2 connection; watching a private,
// presence, encrypted or user channel reveals who comes and goes, so it needs a capability
// token granting subscribe on that channel (Sockudo lets anyone watch any channel).
func (c *Conn) checkMeta(base string) *protocol.Error {
	if !c.v2 {
		return &protocol.Error{Code: protocol.CodeChannelError, Message: "Metachannel subscriptions are only supported on protocol V2"}
	}
	if kindOf(base) != kindChannel {
		return protocol.Errorf(protocol.CodeChannelError, "Invalid metachannel %q: it must name one channel", protocol.Truncate(base, 64))
	}
	if err := protocol.ValidateChannelName(base, c.app.cfg.MaxChannelNameLength); err != nil {
		return err
	}
	if protocol.Classify(base).Type == protocol.Public {
		return nil
	}
	c.mu.Lock()
	tok := c.token
	c.mu.Unlock()
	if tok == nil {
		return protocol.Errorf(protocol.CodeUnauthorized, "Authentication error: the metachannel of %s needs a capability token granting subscribe on it", protocol.Truncate(base, 200))
	}
	return c.allow(protocol.OpSubscribe, base)
}

// metaSend sends one frame to the subscribers of channel's metachannel, if it has any.
// Callers hold no channel or shard lock.
func (a *appState) metaSend(channel string, frame func() []byte) {
	if a.metas.Load() == 0 {
		return
	}
	mc := a.lookup(protocol.MetaChannelFor(channel))
	if mc == nil {
		return
	}
	b := frame()
	mc.mu.RLock()
	mc.fanoutSystem(func(protocol.Version) []byte { return b }, nil)
	mc.mu.RUnlock()
}

// metaCount sends channel_occupied (first subscriber) and subscription_count after a
// subscribe, or subscription_count / channel_vacated (last one gone) after a leave, as
// Sockudo does.
func (a *appState) metaCount(channel string, count int, joined bool) {
	send := func(event string) {
		a.metaSend(channel, func() []byte { return protocol.MetaCountFrame(event, channel, count) })
	}
	switch {
	case joined && count == 1:
		send(protocol.MetaChannelOccupied)
		send(protocol.MetaSubscriptionCount)
	case joined || count > 0:
		send(protocol.MetaSubscriptionCount)
	default:
		send(protocol.MetaChannelVacated)
	}
}

// metaMember sends member_added, member_removed or presence_update {"channel","user_id"} to
// the metachannel.
func (a *appState) metaMember(channel, event, userID string) {
	a.metaSend(channel, func() []byte { return protocol.MetaMemberFrame(event, channel, userID) })
}
