package channels

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

// Subscriber is one client connection as the hub sees it. The server implements it.
type Subscriber interface {
	// SocketID is the connection's socket id ("123.456").
	SocketID() string
	// Version is the wire dialect the connection negotiated.
	Version() protocol.Version
	// Send queues one JSON frame for the client without blocking; a connection speaking a
	// binary wire format transcodes it first (frames for one connection). A subscriber whose
	// queue is full closes itself with 4100; the frame is then dropped.
	Send(frame []byte)
	// SendEncoded is Send for a frame already in the connection's wire format
	// (ConnOptions.Wire): fan-outs encode each form once and share it.
	SendEncoded(frame []byte)
	// Close sends an error frame and closes the connection with err's code. It must not
	// block and may be called from any goroutine, more than once.
	Close(err *protocol.Error)
}

// Options tune a Hub. The zero value works.
type Options struct {
	// Logger receives the hub's logs. Default: no logging.
	Logger *zap.Logger
	// Now is the clock used for rate limits and cache expiry. Default time.Now.
	Now func() time.Time
	// Observer, when set, is told about channel lifecycle events.
	Observer Observer
	// Tap, when set, gets a live copy of the activity of the apps someone watches (the
	// debug console). Default none.
	Tap Tap
	// History, when set, gives the channels that keep history (App.HistoryFor) their
	// serials and stores their messages. Default none: no serials. When it also implements
	// Versions, apps with versioned messages get mutable messages (App.VersionedFor).
	History History
	// OnHistoryError, when set, is told about each failed history append (the message was
	// delivered live without a serial), e.g. to count it in metrics.
	OnHistoryError func(appID string, err error)
	// DeltaEncoder computes delta frames for V2 subscribers that opted in (delta.Encode).
	// Default none: delta opt-ins are answered but every frame is sent in full.
	DeltaEncoder DeltaEncoder
	// TokenRefreshGrace is how long a connection whose capability token expired may take to
	// send a fresh one (sockudo:auth) before it is closed with 4009. Default 30s.
	TokenRefreshGrace time.Duration
	// AfterFunc schedules f after d on the hub's clock (append rollup windows, token expiry
	// and refresh grace, the user-authentication timeout, coalesced subscription counts).
	// Default time.AfterFunc; tests pass a clock they move by hand.
	AfterFunc func(d time.Duration, f func()) Timer
	// ResumeWindow is how long a V2 connection's resume positions for channels it has not
	// subscribed yet wait for their subscribes (pending.go). Default DefaultResumeWindow.
	ResumeWindow time.Duration
	// HistoryMaxAge is the history store's retention by age: a channel's degraded mark (a
	// message went out without being stored) is dropped this long after the last failure,
	// when every position it covers is past retention. 0 keeps marks until a reset.
	HistoryMaxAge time.Duration
	// ReplayQueueLimit caps the live frames queued for one subscription while its rewind or
	// resume replay is read from the history store (replay.go); past it that replay fails.
	// Default DefaultReplayQueueLimit.
	ReplayQueueLimit int
	// PresenceRecorder, when set, is told every membership change of the presence channels
	// (presence_hooks.go; presencehistory.Service records them). Default none.
	PresenceRecorder PresenceRecorder
	// HistoryPageCacheBytes bounds the cache of sockudo:channel_history frames
	// (historycache.go): a request asked again before its channel's stream moved is answered
	// with the frame already encoded, without reading the store. Default
	// DefaultHistoryPageCacheBytes; negative: no cache.
	HistoryPageCacheBytes int
}

// Hub holds the state of every app served by this node.
type Hub struct {
	byID  map[string]*appState
	byKey map[string]*appState
	log   *zap.Logger
	now   func() time.Time
	seed  maphash.Seed
	obs   Observer
	tap   Tap

	history        History
	versions       Versions // the History when it also keeps mutable messages
	onHistoryError func(appID string, err error)
	deltaEncoder   DeltaEncoder
	tokenGrace     time.Duration
	afterFunc      func(time.Duration, func()) Timer
	resumeWindow   time.Duration
	historyMaxAge  time.Duration
	replayLimit    int

	cl  atomic.Pointer[clusterRef]    // set by AttachCluster (cluster.go)
	ann atomic.Pointer[annotationRef] // set by AttachAnnotations (annotation_hooks.go)

	presenceRec PresenceRecorder
	pages       *pageCache // nil: no cache
}

// New builds a hub serving apps (defaults already applied).
func New(apps []config.App, opts Options) *Hub {
	h := &Hub{
		byID:  make(map[string]*appState, len(apps)),
		byKey: make(map[string]*appState, len(apps)),
		log:   opts.Logger,
		now:   opts.Now,
		seed:  maphash.MakeSeed(),
		obs:   opts.Observer,
		tap:   opts.Tap,

		history:        opts.History,
		onHistoryError: opts.OnHistoryError,
		deltaEncoder:   opts.DeltaEncoder,
		tokenGrace:     opts.TokenRefreshGrace,
		afterFunc:      opts.AfterFunc,
		resumeWindow:   opts.ResumeWindow,
		historyMaxAge:  opts.HistoryMaxAge,
		replayLimit:    opts.ReplayQueueLimit,
		presenceRec:    opts.PresenceRecorder,
	}
	if h.replayLimit <= 0 {
		h.replayLimit = DefaultReplayQueueLimit
	}
	switch {
	case opts.HistoryPageCacheBytes == 0:
		h.pages = newPageCache(DefaultHistoryPageCacheBytes)
	case opts.HistoryPageCacheBytes > 0:
		h.pages = newPageCache(int64(opts.HistoryPageCacheBytes))
	}
	if h.resumeWindow <= 0 {
		h.resumeWindow = DefaultResumeWindow
	}
	if h.afterFunc == nil {
		h.afterFunc = func(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
	}
	if v, ok := opts.History.(Versions); ok {
		h.versions = v
	}
	if h.tokenGrace <= 0 {
		h.tokenGrace = 30 * time.Second
	}
	if h.log == nil {
		h.log = zap.NewNop()
	}
	if h.now == nil {
		h.now = time.Now
	}
	for _, a := range apps {
		st := newAppState(h, a)
		h.byID[a.ID] = st
		h.byKey[a.Key] = st
	}
	return h
}

// AppByKey returns the app with this key.
func (h *Hub) AppByKey(key string) (config.App, bool) {
	st, ok := h.byKey[key]
	if !ok {
		return config.App{}, false
	}
	return st.cfg, true
}

// AppByID returns the app with this id.
func (h *Hub) AppByID(id string) (config.App, bool) {
	st, ok := h.byID[id]
	if !ok {
		return config.App{}, false
	}
	return st.cfg, true
}

const shardCount = 64

type shard struct {
	mu       sync.RWMutex
	channels map[string]*channel
}

// appState is the live state of one app.
type appState struct {
	hub    *Hub
	cfg    config.App
	shards [shardCount]shard
	conns  atomic.Int64
	// occupied counts the channels with at least one subscription on this node.
	occupied atomic.Int64

	usersMu sync.Mutex
	// users indexes every connection of a user id, whether it signed in or joined a presence
	// channel with that id (terminate_connections targets both); the value counts the reasons.
	users map[string]map[*Conn]int
	// signedIn indexes connections that signed in, by user id (watchlist online state).
	signedIn map[string]map[*Conn]struct{}
	// watchers maps a watched user id to the signed-in users watching it.
	watchers map[string]map[string]struct{}
	// watchlists holds each signed-in user's watchlist.
	watchlists map[string][]string

	cacheMu sync.Mutex
	cache   map[string]cacheEntry

	// msgIDs issues the message_ids of the app's publishes, one sequence per channel-name
	// hash slot, so consecutive ids of a channel share all but their last digits.
	msgIDs protocol.MessageIDs
	// seq orders the appends, deliveries and exclusive operations of each channel
	// (sequencer.go).
	seq sequencer

	tokensMu sync.Mutex
	// tokens indexes connections holding a capability token, by jti and by client id
	// ("client:" + id), so a revocation finds them.
	tokens map[string]map[*Conn]struct{}
	// revocations maps "jti:"+jti / "client:"+id to when the revocation ends.
	revocations map[string]time.Time

	rec recovery

	// wild indexes the subscribed wildcard patterns; metas counts the metachannels that
	// exist (wildcard.go).
	wild  wildIndex
	metas atomic.Int32
}

func newAppState(h *Hub, cfg config.App) *appState {
	st := &appState{
		hub:        h,
		cfg:        cfg,
		users:      map[string]map[*Conn]int{},
		signedIn:   map[string]map[*Conn]struct{}{},
		watchers:   map[string]map[string]struct{}{},
		watchlists: map[string][]string{},
		cache:      map[string]cacheEntry{},

		tokens:      map[string]map[*Conn]struct{}{},
		revocations: map[string]time.Time{},
	}
	st.rec.init()
	st.seq.init(h.seed)
	for i := range st.shards {
		st.shards[i].channels = map[string]*channel{}
	}
	return st
}

func (a *appState) shardFor(name string) *shard {
	return &a.shards[maphash.String(a.hub.seed, name)%shardCount]
}

// lookup returns the channel if it exists.
func (a *appState) lookup(name string) *channel {
	s := a.shardFor(name)
	s.mu.RLock()
	ch := s.channels[name]
	s.mu.RUnlock()
	return ch
}
