package console

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/config"
)

//go:embed static
var staticFiles embed.FS

// Defaults of Options.
const (
	DefaultSnapshotInterval = time.Second
	DefaultViewerBuffer     = 512
	DefaultSessionTTL       = 12 * time.Hour
	// maxData caps the payload text of one activity sent to a browser.
	maxData = 2048
	// maxListed caps the channels (and the members of each presence channel) in a snapshot.
	maxListed = 200
	// writeTimeout bounds one write of the stream to a viewer.
	writeTimeout = 10 * time.Second
)

// Options tune a Console. The zero value of each field means its documented default.
type Options struct {
	// Path is where the handler is mounted, such as "/console" (no trailing slash); the
	// session cookie is scoped to it. Default config.DefaultConsolePath.
	Path string
	// SnapshotInterval is how often a viewer gets its app's counts. Default 1s.
	SnapshotInterval time.Duration
	// ViewerBuffer caps the activities queued for one viewer; more are dropped and counted.
	// Default 512.
	ViewerBuffer int
	// SessionTTL is how long a sign-in lasts. Default 12h.
	SessionTTL time.Duration
	// Logger receives sign-ins and failures. Default: no logging.
	Logger *zap.Logger
	// Now is the clock of sessions, the sign-in limit and activity times. Default time.Now.
	Now func() time.Time
}

// Console serves the debug console for the apps of one hub. It implements channels.Tap.
// Build it with New; its methods are safe for concurrent use.
type Console struct {
	hub  atomic.Pointer[channels.Hub]
	apps map[string]config.App
	opts Options
	log  *zap.Logger
	now  func() time.Time
	key  []byte // HMAC key of session cookies, random per process
	mux  *http.ServeMux

	// watching counts viewers per app (keys fixed at New, so the map needs no lock); total
	// is their sum, the one load Watching makes while nobody watches.
	watching map[string]*atomic.Int32
	total    atomic.Int32

	mu      sync.RWMutex
	viewers map[*viewer]struct{}

	limiter loginLimiter

	done      chan struct{} // closed by Close: streams end
	closeOnce sync.Once
}

// New builds the console of apps (defaults applied). It serves nothing until SetHub.
func New(apps []config.App, opts Options) *Console {
	if opts.Path == "" {
		opts.Path = config.DefaultConsolePath
	}
	opts.Path = strings.TrimSuffix(opts.Path, "/")
	if opts.SnapshotInterval <= 0 {
		opts.SnapshotInterval = DefaultSnapshotInterval
	}
	if opts.ViewerBuffer <= 0 {
		opts.ViewerBuffer = DefaultViewerBuffer
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	c := &Console{apps: map[string]config.App{}, opts: opts, log: opts.Logger, now: opts.Now,
		key: randomKey(), watching: map[string]*atomic.Int32{}, viewers: map[*viewer]struct{}{}, done: make(chan struct{})}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	if c.now == nil {
		c.now = time.Now
	}
	for _, a := range apps {
		c.apps[a.ID] = a
		c.watching[a.ID] = &atomic.Int32{}
	}
	c.mux = c.routes()
	return c
}

// SetHub sets the hub the console shows and publishes to. It exists because the hub takes
// the console as its Tap when it is built: console.New, then channels.New, then SetHub.
func (c *Console) SetHub(h *channels.Hub) { c.hub.Store(h) }

// Close ends every open event stream (their handlers return), so an HTTP server's graceful
// shutdown need not wait for them; a browser that reconnects later is refused with 503.
func (c *Console) Close() { c.closeOnce.Do(func() { close(c.done) }) }

// Handler serves the console under Options.Path: the page at Path+"/", its API under
// Path+"/api/".
func (c *Console) Handler() http.Handler { return c.mux }

// Path is where the handler expects to be mounted.
func (c *Console) Path() string { return c.opts.Path }

func (c *Console) routes() *http.ServeMux {
	p := c.opts.Path
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFiles, "static")
	files := http.StripPrefix(p+"/", http.FileServerFS(static))
	mux.HandleFunc("GET "+p, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, p+"/", http.StatusFound)
	})
	mux.Handle("GET "+p+"/", pageHeaders(files))
	mux.HandleFunc("POST "+p+"/api/login", c.login)
	mux.HandleFunc("POST "+p+"/api/logout", c.logout)
	mux.HandleFunc("GET "+p+"/api/session", c.authed(c.session))
	mux.HandleFunc("GET "+p+"/api/snapshot", c.authed(c.snapshotJSON))
	mux.HandleFunc("GET "+p+"/api/stream", c.authed(c.stream))
	mux.HandleFunc("POST "+p+"/api/publish", c.authed(c.publish))
	mux.HandleFunc("GET "+p+"/api/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, errBody{"No such console API"})
	})
	return mux
}

// pageHeaders adds the security headers of the page: scripts, styles and connections only
// from the console itself, no framing, no sniffing, no referrer.
func pageHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}

// errBody is the JSON of every console API error.
type errBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
