package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Config is the whole configuration of one pushwire node.
type Config struct {
	// Host is the interface the WebSocket and REST listener binds. Default 127.0.0.1.
	Host string `yaml:"host"`
	// Port is the WebSocket and REST port. Default 6001.
	Port int `yaml:"port"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`
	// LogFormat is console or json. Default console.
	LogFormat string `yaml:"log_format"`

	// MaxConnections caps open WebSocket connections on this node; a connection over it is
	// refused with 4100. 0 means unlimited.
	MaxConnections int `yaml:"max_connections"`
	// ActivityTimeout is announced in connection_established; after this much silence from a
	// client the server sends pusher:ping. Default 120s.
	ActivityTimeout Duration `yaml:"activity_timeout"`
	// PongTimeout is how long the server waits for any frame after its ping before closing
	// with 4201. Default 30s.
	PongTimeout Duration `yaml:"pong_timeout"`
	// MaxMessageKB caps one inbound WebSocket message: a frame taking a message past it
	// closes the connection with 1009 at its header, before its payload is read. Default 64.
	MaxMessageKB int `yaml:"max_message_kb"`
	// MaxResumeMessageKB caps a protocol 2 connection's sockudo:resume message, which the
	// Sockudo clients send as one frame naming every channel they resume (1,000 channels of
	// long names are ~350 KB); other messages over max_message_kb still close with 1009.
	// 0 = 0.5 KB per channel a connection may hold (max_subscriptions_per_connection, at
	// most 1,000) plus 1 KB, at least max_message_kb. Default 0.
	MaxResumeMessageKB int `yaml:"max_resume_message_kb"`
	// MaxRefusedRequests is how many refused requests (4301: history, resume and client-event
	// rates; 4100: the subscription cap) one connection may have, a burst refilled one a
	// second; past it the connection is closed with 4301 "Too many refused requests" (clients
	// do not reconnect from 4301). -1 = never closed. Default 50.
	MaxRefusedRequests int `yaml:"max_refused_requests"`
	// WriteQueueMessages caps the frames queued for one connection. Default 1024.
	WriteQueueMessages int `yaml:"write_queue_messages"`
	// WriteQueueKB caps the bytes queued for one connection; a client that falls further
	// behind is closed with 4100. Default 8192.
	WriteQueueKB int `yaml:"write_queue_kb"`
	// WriteTimeout bounds one socket write; a client that cannot take a frame in this time
	// is disconnected. Default 10s.
	WriteTimeout Duration `yaml:"write_timeout"`
	// ShutdownTimeout bounds the graceful shutdown (close 4200 to every client, drain HTTP).
	// Default 10s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// MaxRequestBodyKB caps an HTTP API request body (413 over it). Default 10240.
	MaxRequestBodyKB int `yaml:"max_request_body_kb"`
	// MaxInboundBufferMB caps, server-wide, the bytes held for input not fully received yet
	// (HTTP bodies being read, WebSocket frames being assembled); past it new input waits or
	// is refused, whatever clients declare. Default 64.
	MaxInboundBufferMB int `yaml:"max_inbound_buffer_mb"`
	// HTTPReadHeaderTimeout bounds reading a request's headers (WebSocket upgrades too).
	// Default 10s.
	HTTPReadHeaderTimeout Duration `yaml:"http_read_header_timeout"`
	// HTTPReadTimeout bounds reading a whole HTTP request, body included: a body that stops
	// arriving is answered 408 and its connection closed. WebSocket connections are not
	// bound by it once upgraded. Default 30s.
	HTTPReadTimeout Duration `yaml:"http_read_timeout"`
	// HTTPIdleTimeout closes a keep-alive HTTP connection idle this long between requests.
	// Default 120s.
	HTTPIdleTimeout Duration `yaml:"http_idle_timeout"`
	// DrainDelay is how long the node reports not ready (GET /ready 503) on SIGTERM before
	// it closes sockets with 4200, so a load balancer stops sending new clients. Default 0.
	DrainDelay Duration `yaml:"drain_delay"`

	// TLSCertFile and TLSKeyFile (PEM) serve WebSocket and REST over TLS (wss://, https://)
	// when both are set. Default: plain TCP.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`

	// MetricsEnabled serves Prometheus metrics on MetricsHost:MetricsPort. Default true.
	MetricsEnabled *bool `yaml:"metrics_enabled"`
	// MetricsHost is the interface of the metrics listener. Default 127.0.0.1.
	MetricsHost string `yaml:"metrics_host"`
	// MetricsPort is the port of the metrics listener (GET /metrics). Default 9601.
	MetricsPort int `yaml:"metrics_port"`

	// Console serves the operator's debug console (live connections, channels and events of
	// an app, and a form that publishes a test event). Each app signs in with its
	// console_token, or its secret when it has none. Default false.
	Console bool `yaml:"console"`
	// ConsoleListener is where the console is served: "metrics" (default: the metrics
	// listener, which needs metrics_enabled) or "main" (the WebSocket and REST port).
	ConsoleListener string `yaml:"console_listener"`
	// ConsolePath is the URL path of the console on its listener. Default /console.
	ConsolePath string `yaml:"console_path"`

	// MaxConnectionsPerIPPerMinute caps new WebSocket connections from one client IP per
	// minute; one over it gets error 4100 and close 4100 (clients back off). 0 = unlimited.
	MaxConnectionsPerIPPerMinute int `yaml:"max_connections_per_ip_per_minute"`
	// HistoryRequestsPerSecond and HistoryRequestBurst bound each connection's history reads
	// (channel_history requests and subscriptions with rewind) as a token bucket: a burst of
	// HistoryRequestBurst, refilled at HistoryRequestsPerSecond. One over it gets error 4301
	// and the connection stays. -1 = unlimited. Defaults 10 and 50.
	HistoryRequestsPerSecond int `yaml:"history_requests_per_second"`
	HistoryRequestBurst      int `yaml:"history_request_burst"`
	// ServerHistoryReadsPerSecond bounds the history reads of all connections together;
	// past it a request gets 4301 "Server busy". 0 = 100 per CPU, -1 = unlimited.
	ServerHistoryReadsPerSecond int `yaml:"server_history_reads_per_second"`
	// ServerResumeChannelsPerSecond paces the channels all connections' resumes work on,
	// together: past a burst of 16 a resume waits before each further channel (the socket
	// is not read meanwhile). 0 = 1,000 per CPU, -1 = unpaced.
	ServerResumeChannelsPerSecond int `yaml:"server_resume_channels_per_second"`
	// ResumeRequestsPerMinute bounds each connection's sockudo:resume requests (a burst of
	// as many, refilled per minute); one over it gets error 4301. -1 = unlimited. Default 10.
	ResumeRequestsPerMinute int `yaml:"resume_requests_per_minute"`
	// MaxSubscriptionsPerConnection caps the channels one connection is subscribed to; a
	// subscription over it fails with 4100 (LimitReached). -1 = unlimited. Default 1000.
	MaxSubscriptionsPerConnection int `yaml:"max_subscriptions_per_connection"`
	// TrustForwardedFor takes the client IP from the first X-Forwarded-For address (set it
	// only behind a proxy you control). Default false: the peer address.
	TrustForwardedFor bool `yaml:"trust_forwarded_for"`

	// WebhookQueueSize bounds the webhook events waiting for delivery to one endpoint; events
	// over it are dropped and counted, never blocking a publish or a socket. Default 10000.
	WebhookQueueSize int `yaml:"webhook_queue_size"`
	// WebhookBatchSize caps the events of one webhook request. Default 100.
	WebhookBatchSize int `yaml:"webhook_batch_size"`
	// WebhookBatchInterval is how long events gather before a webhook request. Default 50ms.
	WebhookBatchInterval Duration `yaml:"webhook_batch_interval"`
	// WebhookTimeout bounds one webhook request. Default 10s.
	WebhookTimeout Duration `yaml:"webhook_timeout"`
	// WebhookRetryFor is how long a failing webhook batch is retried (network errors, 5xx,
	// 408, 429) with exponential backoff. Default 5m.
	WebhookRetryFor Duration `yaml:"webhook_retry_for"`
	// WebhookVacateDelay is how long channel_vacated and member_removed wait and re-check
	// before being sent, so a quick reconnect does not flap. Default 3s.
	WebhookVacateDelay Duration `yaml:"webhook_vacate_delay"`

	// WSCompression negotiates permessage-deflate with clients that offer it:
	// "no_context_takeover" (default: each message compressed alone, little memory),
	// "context_takeover" (better ratio, a 32 KB window per connection) or "disabled".
	WSCompression string `yaml:"ws_compression"`
	// WSCompressionThreshold is the smallest message compressed, in bytes. Default 512.
	WSCompressionThreshold int `yaml:"ws_compression_threshold"`
	// WSTransport is the WebSocket implementation: "auto" (default: pushwire's event-driven
	// epoll transport on Linux for plain connections, permessage-deflate without context
	// takeover included; coder/websocket for TLS and context takeover), "std"
	// (coder/websocket for all) or "epoll" (as auto, with a warning where epoll is missing).
	WSTransport string `yaml:"ws_transport"`
	// GCPercent is the Go garbage collector's target (GOGC) unless the GOGC environment
	// variable is set: the heap may grow this many percent over the live data before a
	// collection. Default 50 — a realtime server's heap is mostly long-lived connection
	// state, so a lower target costs little CPU and keeps the memory per connection down.
	// -1 keeps Go's own default (100).
	GCPercent int `yaml:"gc_percent"`
	// MinProcs is the fewest Ps (GOMAXPROCS) the Go scheduler runs with, unless the GOMAXPROCS
	// environment variable is set. Default 2: with one P (a server pinned to one core) the
	// garbage collector's mark worker takes that P in stretches of 10–60 ms while a big heap
	// is marked, and every channel's delivery waits behind it; with two it runs on its own
	// thread and the kernel interleaves it with the serving one at its own fine grain. The
	// server's paces and pools are still sized by the CPUs Go found (runtime.GOMAXPROCS
	// before the floor). 1 keeps Go's choice.
	MinProcs int `yaml:"min_procs"`

	// History is the message store of channels that keep history: "memory" (default:
	// bounded per channel, gone on restart) or "postgres" (durable, shared by several nodes;
	// needs database_url).
	History string `yaml:"history"`
	// DatabaseURL is the Postgres connection URL of the postgres history store, such as
	// postgres://user:pass@host:5432/db. Default empty.
	DatabaseURL string `yaml:"database_url"`
	// HistoryMaxMessages caps the messages kept per channel. Default 1000 (memory) and
	// 10000 (postgres) when 0.
	HistoryMaxMessages int `yaml:"history_max_messages"`
	// HistoryMaxAge drops stored messages older than this. Default 24h.
	HistoryMaxAge Duration `yaml:"history_max_age"`

	// TokenRefreshGrace is how long a V2 connection whose capability token expired may take
	// to send a fresh one (sockudo:auth) before it is closed with 4009. Default 30s.
	TokenRefreshGrace Duration `yaml:"token_refresh_grace"`
	// ResumeWindow is how long a V2 connection's sockudo:resume positions for channels it
	// has not subscribed yet wait for their subscribes (the clients resume before their
	// authorized subscribes); after it those channels get resume_failed. Default 30s.
	ResumeWindow Duration `yaml:"resume_window"`
	// ReplayQueueLimit caps the live frames queued for one subscription while its rewind or
	// resume replay is read from the history store (the channel's publishes go on
	// meanwhile); past it that replay fails with resume_failed / the rewind's error and the
	// frames go out. Default 10000.
	ReplayQueueLimit int `yaml:"replay_queue_limit"`

	// Cluster makes several nodes behave as one server through a broker: "local" (default:
	// a single node), "redis" (needs redis_url) or "nats" (needs nats_url).
	Cluster string `yaml:"cluster"`
	// RedisURL is the redis:// URL of the cluster broker (cluster: redis) and of the shared
	// idempotency store when clustered. Default empty.
	RedisURL string `yaml:"redis_url"`
	// NATSURL is the nats:// URL (or comma-separated URLs) of the cluster broker
	// (cluster: nats). Default empty.
	NATSURL string `yaml:"nats_url"`
	// ClusterNodeTimeout is how long a node may stay silent before the others consider it
	// dead and drop its presence members. Default 15s.
	ClusterNodeTimeout Duration `yaml:"cluster_node_timeout"`
	// ClusterHeartbeat is how often a node announces itself to the others. Default 3s.
	ClusterHeartbeat Duration `yaml:"cluster_heartbeat"`
	// ClusterPrefix starts the broker's channel (Redis) or subject (NATS) names and the
	// shared idempotency keys; the nodes of one cluster share it, and clusters sharing one
	// broker need different ones. Default "pushwire".
	ClusterPrefix string `yaml:"cluster_prefix"`

	// PushStore keeps push devices, interests and the outbound queue: "memory" (default) or
	// "postgres" (durable across restarts; needs database_url).
	PushStore string `yaml:"push_store"`

	// Apps are the applications this node serves. Default: the single development app
	// app-id / app-key / app-secret with every feature on.
	Apps []App `yaml:"apps"`
}

// App is one application: its credentials, features and limits.
type App struct {
	// ID is the app id used in REST paths (/apps/{id}/...). Required, unique.
	ID string `yaml:"id"`
	// Key is the public key clients connect with (/app/{key}). Required, unique.
	Key string `yaml:"key"`
	// Secret signs REST requests and channel authorizations. Required.
	Secret string `yaml:"secret"`
	// Enabled turns the app on or off. Default true; a disabled app refuses sockets with 4003.
	Enabled *bool `yaml:"enabled"`

	// EnableClientMessages allows client- events on private and presence channels. Default true.
	EnableClientMessages *bool `yaml:"enable_client_messages"`
	// EnableUserAuthentication allows pusher:signin and the #server-to-user-{id} channel. Default true.
	EnableUserAuthentication *bool `yaml:"enable_user_authentication"`
	// EnableWatchlistEvents sends online/offline watchlist events to signed-in users. Default true.
	EnableWatchlistEvents *bool `yaml:"enable_watchlist_events"`
	// UserAuthenticationTimeout closes (4009) a connection that neither signs in nor
	// subscribes to an authorized channel within this time. 0 (default) never closes.
	UserAuthenticationTimeout Duration `yaml:"user_authentication_timeout"`
	// SubscriptionCountEvents sends pusher_internal:subscription_count to the subscribers of
	// non-presence channels when their count changes, as Pusher's "subscription counting"
	// app setting does (pusher-js: channel.bind("pusher:subscription_count")). Default false,
	// as on Pusher.
	SubscriptionCountEvents bool `yaml:"subscription_count_events"`
	// MaxBackendEventsPerSecond caps HTTP API publishes (events, counting each batch item)
	// per second for the app; over it the API answers 429. 0 = unlimited (default).
	MaxBackendEventsPerSecond int `yaml:"max_backend_events_per_second"`
	// ConsoleToken is the credential that signs in to the debug console for this app, so the
	// operators need not know the secret. Default empty: the app secret signs in.
	ConsoleToken string `yaml:"console_token"`
	// Webhooks are the endpoints notified of this app's channel events. Default none.
	Webhooks []Webhook `yaml:"webhooks"`
	// AllowedOrigins, when non-empty, refuses sockets whose Origin header is not listed
	// (4009). "*" allows any. Default empty: every origin is allowed.
	AllowedOrigins []string `yaml:"allowed_origins"`

	// MaxConnections caps this app's open sockets on the node (4004 over it). 0 = unlimited.
	MaxConnections int `yaml:"max_connections"`
	// MaxClientEventsPerSecond is the per-connection client-event rate. Default 10.
	MaxClientEventsPerSecond int `yaml:"max_client_events_per_second"`
	// TerminateOnClientEventLimit closes the connection (4301) instead of only refusing the
	// event when the client-event rate is exceeded. Default false.
	TerminateOnClientEventLimit bool `yaml:"terminate_on_client_event_limit"`
	// MaxPresenceMembersPerChannel caps distinct users in one presence channel. Default 100.
	MaxPresenceMembersPerChannel int `yaml:"max_presence_members_per_channel"`
	// MaxPresenceMemberSizeKB caps one member's user_info JSON. Default 2.
	MaxPresenceMemberSizeKB int `yaml:"max_presence_member_size_kb"`
	// MaxChannelNameLength caps channel names in bytes. Default 200.
	MaxChannelNameLength int `yaml:"max_channel_name_length"`
	// MaxEventNameLength caps event names in bytes. Default 200.
	MaxEventNameLength int `yaml:"max_event_name_length"`
	// MaxWildcardSubscriptionsPerConnection caps the wildcard subscriptions ("ticker:*") of
	// one V2 connection. Default 16.
	MaxWildcardSubscriptionsPerConnection int `yaml:"max_wildcard_subscriptions_per_connection"`
	// MaxWildcardPatterns caps the distinct wildcard patterns subscribed in the app at once.
	// Default 10000.
	MaxWildcardPatterns int `yaml:"max_wildcard_patterns"`
	// MaxEventPayloadKB caps one event's data (HTTP publish and client events). Default 100.
	MaxEventPayloadKB int `yaml:"max_event_payload_kb"`
	// MaxEventChannelsAtOnce caps the channels of one HTTP publish. Default 100.
	MaxEventChannelsAtOnce int `yaml:"max_event_channels_at_once"`
	// MaxEventBatchSize caps the events of one batch_events request. Default 10.
	MaxEventBatchSize int `yaml:"max_event_batch_size"`
	// CacheTTL is how long a cache channel keeps its last event. Default 30m.
	CacheTTL Duration `yaml:"cache_ttl"`

	// EnableHistory gives channels a serial stream and stores their messages (V2
	// message_id/serial/stream_id, rewind, resume). Default true.
	EnableHistory *bool `yaml:"enable_history"`
	// HistoryChannels, when non-empty, limits history to channels whose name starts with
	// one of these prefixes. Default empty: every channel.
	HistoryChannels []string `yaml:"history_channels"`
	// EnableVersionedMessages makes HTTP publishes to history channels mutable messages
	// (message_serial; update, delete and append through the HTTP API). Default false;
	// true for the embedded default app.
	EnableVersionedMessages *bool `yaml:"enable_versioned_messages"`
	// VersionedChannels, when non-empty, limits mutable messages to channels whose name
	// starts with one of these prefixes. Default empty: every history channel.
	VersionedChannels []string `yaml:"versioned_channels"`
	// EnableDeltaCompression lets V2 clients opt in to delta frames (fossil, xdelta3).
	// Default true.
	EnableDeltaCompression *bool `yaml:"enable_delta_compression"`
	// DeltaFullInterval is the most consecutive delta frames before a full one. Default 100:
	// a full frame also goes out whenever a delta would not be smaller and after
	// delta_sync_error, so the periodic one only bounds how long a client that failed to
	// decode a delta (sockudo-js and sockudo_flutter then drop messages until the next full
	// frame, without asking for one) stays behind; see bench/RESULTS.md (issue 19).
	DeltaFullInterval int `yaml:"delta_full_interval"`
	// DeltaPositions puts the message's message_id, stream_id and serial on its
	// sockudo:delta frames too. sockudo-js and sockudo_flutter read recovery positions and
	// dedup ids from the outer frame only, so without them (as in Sockudo) they move their
	// resume position and dedup window on full frames only: a reconnect after deltas
	// replays, as duplicates, what came since the last full frame. Default false: they cost
	// ~115 bytes per delta frame (64 without message_id), most of what the deltas save on a
	// price feed; see bench/RESULTS.md (issue 19).
	DeltaPositions bool `yaml:"delta_positions"`
	// DeltaConflationKeys maps channel patterns (one "*" wildcard allowed) to the dotted path
	// of a conflation key inside the message data (such as "asset"): deltas are then computed
	// per key value, so interleaved streams of several assets each delta against their own
	// previous frame. Default none.
	DeltaConflationKeys map[string]string `yaml:"delta_conflation_keys"`
	// IdempotencyTTL is how long an HTTP publish's idempotency key is remembered: a repeat
	// within it gets the first answer and delivers nothing. Default 120s.
	IdempotencyTTL Duration `yaml:"idempotency_ttl"`
	// Push holds the app's push-notification settings (config/push.go).
	Push AppPush `yaml:"push"`
	// PresenceHistory holds the app's presence-history settings (config/presence_history.go).
	PresenceHistory AppPresenceHistory `yaml:"presence_history"`
}

// Webhook is one webhook endpoint of an app.
type Webhook struct {
	// URL receives POSTs of {"time_ms","events":[...]} signed with X-Pusher-Key and
	// X-Pusher-Signature (hex HMAC-SHA256 of the body with the app secret). Required.
	URL string `yaml:"url"`
	// EventTypes lists the events this endpoint wants: channel_occupied, channel_vacated,
	// member_added, member_removed, client_event, cache_miss, subscription_count,
	// message_version_created, push_delivery_failed, annotation_created,
	// annotation_deleted. Required.
	EventTypes []string `yaml:"event_types"`
	// ChannelPrefix, when set, limits the endpoint to channels starting with it.
	ChannelPrefix string `yaml:"channel_prefix"`
	// Headers are extra HTTP headers sent with every request.
	Headers map[string]string `yaml:"headers"`
}

// WebhookEventTypes are the event types a webhook may subscribe to.
var WebhookEventTypes = []string{"channel_occupied", "channel_vacated", "member_added", "member_removed", "client_event", "cache_miss", "subscription_count", "message_version_created", "push_delivery_failed",
	"annotation_created", "annotation_deleted"}

// Wants reports whether the endpoint takes this event type on this channel.
func (w *Webhook) Wants(eventType, channel string) bool {
	if !strings.HasPrefix(channel, w.ChannelPrefix) {
		return false
	}
	for _, t := range w.EventTypes {
		if t == eventType {
			return true
		}
	}
	return false
}

// Feature accessors resolve the optional booleans to their defaults.

// MetricsOn reports whether the metrics listener runs (default true).
func (c *Config) MetricsOn() bool { return c.MetricsEnabled == nil || *c.MetricsEnabled }

// IsEnabled reports whether the app accepts connections (default true).
func (a *App) IsEnabled() bool { return a.Enabled == nil || *a.Enabled }

// ClientMessages reports whether client events are enabled (default true).
func (a *App) ClientMessages() bool { return a.EnableClientMessages == nil || *a.EnableClientMessages }

// UserAuthentication reports whether sign-in is enabled (default true).
func (a *App) UserAuthentication() bool {
	return a.EnableUserAuthentication == nil || *a.EnableUserAuthentication
}

// WatchlistEvents reports whether watchlist events are enabled (default true).
func (a *App) WatchlistEvents() bool {
	return a.EnableWatchlistEvents == nil || *a.EnableWatchlistEvents
}

// DeltaOn reports whether V2 clients may opt in to delta compression.
func (a *App) DeltaOn() bool { return a.EnableDeltaCompression == nil || *a.EnableDeltaCompression }

// DeltaConflationPath returns the conflation key path configured for the channel ("" none).
func (a *App) DeltaConflationPath(channel string) string {
	for pattern, path := range a.DeltaConflationKeys {
		if pre, suf, wild := strings.Cut(pattern, "*"); wild {
			if len(channel) >= len(pre)+len(suf) && strings.HasPrefix(channel, pre) && strings.HasSuffix(channel, suf) {
				return path
			}
		} else if pattern == channel {
			return path
		}
	}
	return ""
}

// HistoryFor reports whether the channel keeps history (serials and stored messages).
func (a *App) HistoryFor(channel string) bool {
	if a.EnableHistory != nil && !*a.EnableHistory {
		return false
	}
	return matchesPrefix(channel, a.HistoryChannels)
}

// matchesPrefix reports whether channel starts with one of prefixes; no prefixes match all.
func matchesPrefix(channel string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(channel, p) {
			return true
		}
	}
	return false
}

// VersionedFor reports whether HTTP publishes to the channel create mutable messages: the
// app enabled them, the channel matches VersionedChannels and keeps history.
func (a *App) VersionedFor(channel string) bool {
	if a.EnableVersionedMessages == nil || !*a.EnableVersionedMessages || !a.HistoryFor(channel) {
		return false
	}
	return matchesPrefix(channel, a.VersionedChannels)
}

// OriginAllowed reports whether a socket with this Origin header may connect.
func (a *App) OriginAllowed(origin string) bool {
	if len(a.AllowedOrigins) == 0 {
		return true
	}
	for _, o := range a.AllowedOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// Defaults of the server settings and of every app.
const (
	DefaultHost                         = "127.0.0.1"
	DefaultPort                         = 6001
	DefaultActivityTimeout              = 120 * time.Second
	DefaultPongTimeout                  = 30 * time.Second
	DefaultMaxMessageKB                 = 64
	DefaultWriteQueueMessages           = 1024
	DefaultWriteQueueKB                 = 8192
	DefaultWriteTimeout                 = 10 * time.Second
	DefaultHTTPReadHeaderTimeout        = 10 * time.Second
	DefaultHTTPReadTimeout              = 30 * time.Second
	DefaultHTTPIdleTimeout              = 120 * time.Second
	DefaultShutdownTimeout              = 10 * time.Second
	DefaultMaxRequestBodyKB             = 10240
	DefaultMaxInboundBufferMB           = 64
	DefaultHistoryRequestsPerSecond     = 10
	DefaultHistoryRequestBurst          = 50
	DefaultResumeRequestsPerMinute      = 10
	DefaultMaxSubscriptionsPerConn      = 1000
	DefaultMaxRefusedRequests           = 50
	DefaultMetricsHost                  = "127.0.0.1"
	DefaultMetricsPort                  = 9601
	DefaultConsolePath                  = "/console"
	DefaultWebhookQueueSize             = 10000
	DefaultWebhookBatchSize             = 100
	DefaultWebhookBatchInterval         = 50 * time.Millisecond
	DefaultWebhookTimeout               = 10 * time.Second
	DefaultWebhookRetryFor              = 5 * time.Minute
	DefaultWebhookVacateDelay           = 3 * time.Second
	DefaultMaxClientEventsPerSecond     = 10
	DefaultMaxPresenceMembersPerChannel = 100
	DefaultMaxPresenceMemberSizeKB      = 2
	DefaultMaxChannelNameLength         = 200
	DefaultMaxEventNameLength           = 200
	DefaultMaxEventPayloadKB            = 100
	DefaultMaxEventChannelsAtOnce       = 100
	DefaultMaxEventBatchSize            = 10
	DefaultCacheTTL                     = 30 * time.Minute
	DefaultTokenRefreshGrace            = 30 * time.Second
	DefaultResumeWindow                 = 30 * time.Second
	DefaultReplayQueueLimit             = 10000
	DefaultHistoryMaxAge                = 24 * time.Hour
	DefaultDeltaFullInterval            = 100
	DefaultGCPercent                    = 50
	DefaultMinProcs                     = 2
	DefaultIdempotencyTTL               = 120 * time.Second
	DefaultClusterNodeTimeout           = 15 * time.Second
	DefaultClusterHeartbeat             = 3 * time.Second
)

// DefaultApp is the embedded development app: app-id / app-key / app-secret, everything on.
func DefaultApp() App {
	on := true
	return App{ID: "app-id", Key: "app-key", Secret: "app-secret", EnableVersionedMessages: &on, Push: AppPush{Enabled: &on},
		PresenceHistory: AppPresenceHistory{Enabled: &on}}
}

// ApplyDefaults fills every zero field with its documented default.
func (c *Config) ApplyDefaults() {
	setStr(&c.Host, DefaultHost)
	setInt(&c.Port, DefaultPort)
	setStr(&c.LogLevel, "info")
	setStr(&c.LogFormat, "console")
	setDur(&c.ActivityTimeout, DefaultActivityTimeout)
	setDur(&c.PongTimeout, DefaultPongTimeout)
	setInt(&c.MaxMessageKB, DefaultMaxMessageKB)
	setInt(&c.WriteQueueMessages, DefaultWriteQueueMessages)
	setInt(&c.WriteQueueKB, DefaultWriteQueueKB)
	setDur(&c.WriteTimeout, DefaultWriteTimeout)
	setDur(&c.HTTPReadHeaderTimeout, DefaultHTTPReadHeaderTimeout)
	setDur(&c.HTTPReadTimeout, DefaultHTTPReadTimeout)
	setDur(&c.HTTPIdleTimeout, DefaultHTTPIdleTimeout)
	setDur(&c.ShutdownTimeout, DefaultShutdownTimeout)
	setInt(&c.MaxRequestBodyKB, DefaultMaxRequestBodyKB)
	setInt(&c.MaxInboundBufferMB, DefaultMaxInboundBufferMB)
	setInt(&c.HistoryRequestsPerSecond, DefaultHistoryRequestsPerSecond)
	setInt(&c.HistoryRequestBurst, DefaultHistoryRequestBurst)
	setInt(&c.ResumeRequestsPerMinute, DefaultResumeRequestsPerMinute)
	setInt(&c.MaxSubscriptionsPerConnection, DefaultMaxSubscriptionsPerConn)
	setInt(&c.MaxRefusedRequests, DefaultMaxRefusedRequests)
	setStr(&c.MetricsHost, DefaultMetricsHost)
	setInt(&c.MetricsPort, DefaultMetricsPort)
	setStr(&c.ConsoleListener, "metrics")
	setStr(&c.ConsolePath, DefaultConsolePath)
	setInt(&c.WebhookQueueSize, DefaultWebhookQueueSize)
	setInt(&c.WebhookBatchSize, DefaultWebhookBatchSize)
	setDur(&c.WebhookBatchInterval, DefaultWebhookBatchInterval)
	setDur(&c.WebhookTimeout, DefaultWebhookTimeout)
	setDur(&c.WebhookRetryFor, DefaultWebhookRetryFor)
	setDur(&c.WebhookVacateDelay, DefaultWebhookVacateDelay)
	setDur(&c.TokenRefreshGrace, DefaultTokenRefreshGrace)
	setDur(&c.ResumeWindow, DefaultResumeWindow)
	setInt(&c.ReplayQueueLimit, DefaultReplayQueueLimit)
	setStr(&c.History, "memory")
	setStr(&c.Cluster, "local")
	setDur(&c.ClusterNodeTimeout, DefaultClusterNodeTimeout)
	setDur(&c.ClusterHeartbeat, DefaultClusterHeartbeat)
	setStr(&c.ClusterPrefix, "pushwire")
	setStr(&c.WSCompression, "no_context_takeover")
	setInt(&c.WSCompressionThreshold, 512)
	setStr(&c.WSTransport, "auto")
	setInt(&c.GCPercent, DefaultGCPercent)
	setInt(&c.MinProcs, DefaultMinProcs)
	setDur(&c.HistoryMaxAge, DefaultHistoryMaxAge)
	setStr(&c.PushStore, "memory")
	if len(c.Apps) == 0 {
		c.Apps = []App{DefaultApp()}
	}
	for i := range c.Apps {
		c.Apps[i].ApplyDefaults()
	}
}

// Default wildcard subscription limits (V2).
const (
	DefaultMaxWildcardSubscriptionsPerConnection = 16
	DefaultMaxWildcardPatterns                   = 10000
)

// ApplyDefaults fills every zero limit of the app with its documented default.
func (a *App) ApplyDefaults() {
	if a.EnableVersionedMessages == nil {
		off := false // the one feature switch that is off unless asked for
		a.EnableVersionedMessages = &off
	}
	setInt(&a.MaxClientEventsPerSecond, DefaultMaxClientEventsPerSecond)
	setInt(&a.MaxPresenceMembersPerChannel, DefaultMaxPresenceMembersPerChannel)
	setInt(&a.MaxPresenceMemberSizeKB, DefaultMaxPresenceMemberSizeKB)
	setInt(&a.MaxChannelNameLength, DefaultMaxChannelNameLength)
	setInt(&a.MaxEventNameLength, DefaultMaxEventNameLength)
	setInt(&a.MaxWildcardSubscriptionsPerConnection, DefaultMaxWildcardSubscriptionsPerConnection)
	setInt(&a.MaxWildcardPatterns, DefaultMaxWildcardPatterns)
	setInt(&a.MaxEventPayloadKB, DefaultMaxEventPayloadKB)
	setInt(&a.MaxEventChannelsAtOnce, DefaultMaxEventChannelsAtOnce)
	setInt(&a.MaxEventBatchSize, DefaultMaxEventBatchSize)
	setDur(&a.CacheTTL, DefaultCacheTTL)
	setDur(&a.IdempotencyTTL, DefaultIdempotencyTTL)
	setInt(&a.DeltaFullInterval, DefaultDeltaFullInterval)
	a.Push.applyDefaults()
	a.PresenceHistory.applyDefaults()
}

// Validate checks the configuration after defaults were applied; the error names the field,
// e.g. "apps[1].key: duplicate of apps[0].key".
func (c *Config) Validate() error {
	if errs := c.problems(); len(errs) > 0 {
		return fmt.Errorf("config: %s", strings.Join(errs, "; "))
	}
	return nil
}

// problems lists every validation failure as "field: reason", in field order.
func (c *Config) problems() []string {
	var errs []string
	bad := func(field, format string, args ...any) {
		errs = append(errs, field+": "+fmt.Sprintf(format, args...))
	}
	if c.Port < 1 || c.Port > 65535 {
		bad("port", "must be between 1 and 65535, got %d", c.Port)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	switch c.WSCompression {
	case "no_context_takeover", "context_takeover", "disabled":
	default:
		bad("ws_compression", "must be no_context_takeover, context_takeover or disabled, got %q", c.WSCompression)
	}
	switch c.WSTransport {
	case "auto", "std", "epoll":
	default:
		bad("ws_transport", "must be auto, std or epoll, got %q", c.WSTransport)
	}
	if c.GCPercent != -1 && (c.GCPercent < 10 || c.GCPercent > 1000) {
		bad("gc_percent", "must be between 10 and 1000, or -1 for Go's default, got %d", c.GCPercent)
	}
	if c.MinProcs < 1 || c.MinProcs > 1024 {
		bad("min_procs", "must be between 1 and 1024, got %d", c.MinProcs)
	}
	switch c.History {
	case "memory":
	case "postgres":
		if c.DatabaseURL == "" {
			bad("database_url", "is required with history: postgres")
		}
	default:
		bad("history", "must be memory or postgres, got %q", c.History)
	}
	if c.HistoryMaxMessages < 0 {
		bad("history_max_messages", "must not be negative")
	}
	if c.ReplayQueueLimit < 1 {
		bad("replay_queue_limit", "must be at least 1")
	}
	switch c.Cluster {
	case "local":
	case "redis":
		if c.RedisURL == "" {
			bad("redis_url", "is required with cluster: redis")
		}
	case "nats":
		if c.NATSURL == "" {
			bad("nats_url", "is required with cluster: nats")
		}
	default:
		bad("cluster", "must be local, redis or nats, got %q", c.Cluster)
	}
	if strings.ContainsAny(c.ClusterPrefix, "*>?[] \t\r\n") || strings.HasPrefix(c.ClusterPrefix, ".") || strings.HasSuffix(c.ClusterPrefix, ".") || strings.Contains(c.ClusterPrefix, "..") {
		bad("cluster_prefix", "must be dot-separated names without wildcards or spaces, got %q", c.ClusterPrefix)
	}
	if c.ClusterHeartbeat.D() <= 0 || c.ClusterNodeTimeout.D() < 2*c.ClusterHeartbeat.D() {
		bad("cluster_node_timeout", "must be at least twice cluster_heartbeat (%s), got %s", c.ClusterHeartbeat.D(), c.ClusterNodeTimeout.D())
	}
	switch c.LogFormat {
	case "console", "json":
	default:
		bad("log_format", "must be console or json, got %q", c.LogFormat)
	}
	nonNeg := map[string]int{"max_connections": c.MaxConnections, "max_resume_message_kb": c.MaxResumeMessageKB}
	for f, v := range nonNeg {
		if v < 0 {
			bad(f, "must not be negative, got %d", v)
		}
	}
	positive := []struct {
		field string
		v     int
	}{
		{"max_message_kb", c.MaxMessageKB}, {"write_queue_messages", c.WriteQueueMessages},
		{"write_queue_kb", c.WriteQueueKB}, {"max_request_body_kb", c.MaxRequestBodyKB}, {"max_inbound_buffer_mb", c.MaxInboundBufferMB},
	}
	for _, p := range positive {
		if p.v <= 0 {
			bad(p.field, "must be positive, got %d", p.v)
		}
	}
	if c.ActivityTimeout.D() < time.Second {
		bad("activity_timeout", "must be at least 1s, got %s", c.ActivityTimeout.D())
	}
	if c.PongTimeout.D() <= 0 {
		bad("pong_timeout", "must be positive, got %s", c.PongTimeout.D())
	}
	if c.WriteTimeout.D() <= 0 {
		bad("write_timeout", "must be positive, got %s", c.WriteTimeout.D())
	}
	if c.ShutdownTimeout.D() <= 0 {
		bad("shutdown_timeout", "must be positive, got %s", c.ShutdownTimeout.D())
	}
	for _, d := range []struct {
		field string
		v     Duration
	}{{"http_read_header_timeout", c.HTTPReadHeaderTimeout}, {"http_read_timeout", c.HTTPReadTimeout}, {"http_idle_timeout", c.HTTPIdleTimeout}} {
		if d.v.D() <= 0 {
			bad(d.field, "must be positive, got %s", d.v.D())
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("tls_cert_file", "tls_cert_file and tls_key_file must be set together")
	}
	if c.MetricsOn() && (c.MetricsPort < 1 || c.MetricsPort > 65535) {
		bad("metrics_port", "must be between 1 and 65535, got %d", c.MetricsPort)
	}
	if c.MetricsOn() && c.MetricsPort == c.Port && (c.MetricsHost == c.Host || c.MetricsHost == "0.0.0.0" || c.Host == "0.0.0.0") {
		bad("metrics_port", "must differ from port %d", c.Port)
	}
	switch c.ConsoleListener {
	case "metrics":
		if c.Console && !c.MetricsOn() {
			bad("console_listener", "is metrics but metrics_enabled is false: enable metrics or use console_listener: main")
		}
	case "main":
	default:
		bad("console_listener", "must be metrics or main, got %q", c.ConsoleListener)
	}
	if !validConsolePath(c.ConsolePath) {
		bad("console_path", "must be a path such as /console or /ops/console (letters, digits, '-', '_', '/'), not one of pushwire's own paths, got %q", c.ConsolePath)
	}
	for _, p := range []struct {
		field string
		v     int
	}{{"max_connections_per_ip_per_minute", c.MaxConnectionsPerIPPerMinute}} {
		if p.v < 0 {
			bad(p.field, "must not be negative, got %d", p.v)
		}
	}
	for _, p := range []struct {
		field string
		v     int
	}{{"history_requests_per_second", c.HistoryRequestsPerSecond}, {"history_request_burst", c.HistoryRequestBurst},
		{"resume_requests_per_minute", c.ResumeRequestsPerMinute}, {"max_subscriptions_per_connection", c.MaxSubscriptionsPerConnection},
		{"server_history_reads_per_second", c.ServerHistoryReadsPerSecond}, {"server_resume_channels_per_second", c.ServerResumeChannelsPerSecond},
		{"max_refused_requests", c.MaxRefusedRequests}} {
		if p.v < -1 {
			bad(p.field, "must be positive, or -1 for unlimited, got %d", p.v)
		}
	}
	for _, p := range []struct {
		field string
		v     int
	}{{"webhook_queue_size", c.WebhookQueueSize}, {"webhook_batch_size", c.WebhookBatchSize}} {
		if p.v <= 0 {
			bad(p.field, "must be positive, got %d", p.v)
		}
	}
	for _, d := range []struct {
		field string
		v     Duration
	}{{"webhook_batch_interval", c.WebhookBatchInterval}, {"webhook_timeout", c.WebhookTimeout}, {"webhook_retry_for", c.WebhookRetryFor}, {"webhook_vacate_delay", c.WebhookVacateDelay}, {"token_refresh_grace", c.TokenRefreshGrace}, {"resume_window", c.ResumeWindow}, {"history_max_age", c.HistoryMaxAge}} {
		if d.v < 0 {
			bad(d.field, "must not be negative, got %s", d.v)
		}
	}
	if c.DrainDelay < 0 {
		bad("drain_delay", "must not be negative, got %s", c.DrainDelay)
	}
	c.pushProblems(bad)
	c.presenceHistoryProblems(bad)
	ids, keys := map[string]int{}, map[string]int{}
	for i, a := range c.Apps {
		p := fmt.Sprintf("apps[%d]", i)
		if a.ID == "" {
			bad(p+".id", "is required")
		}
		if a.Key == "" {
			bad(p+".key", "is required")
		}
		if a.Secret == "" {
			bad(p+".secret", "is required")
		}
		if strings.ContainsAny(a.Key, ":/?# ") {
			bad(p+".key", "must not contain ':', '/', '?', '#' or spaces")
		}
		if j, dup := ids[a.ID]; dup && a.ID != "" {
			bad(p+".id", "duplicate of apps[%d].id %q", j, a.ID)
		}
		if j, dup := keys[a.Key]; dup && a.Key != "" {
			bad(p+".key", "duplicate of apps[%d].key %q", j, a.Key)
		}
		ids[a.ID], keys[a.Key] = i, i
		limits := []struct {
			field string
			v     int
		}{
			{"max_client_events_per_second", a.MaxClientEventsPerSecond},
			{"max_presence_members_per_channel", a.MaxPresenceMembersPerChannel},
			{"max_presence_member_size_kb", a.MaxPresenceMemberSizeKB},
			{"max_channel_name_length", a.MaxChannelNameLength},
			{"max_event_name_length", a.MaxEventNameLength},
			{"max_wildcard_subscriptions_per_connection", a.MaxWildcardSubscriptionsPerConnection},
			{"max_wildcard_patterns", a.MaxWildcardPatterns},
			{"max_event_payload_kb", a.MaxEventPayloadKB},
			{"max_event_channels_at_once", a.MaxEventChannelsAtOnce},
			{"max_event_batch_size", a.MaxEventBatchSize},
		}
		for _, l := range limits {
			if l.v <= 0 {
				bad(p+"."+l.field, "must be positive, got %d", l.v)
			}
		}
		if a.MaxConnections < 0 {
			bad(p+".max_connections", "must not be negative, got %d", a.MaxConnections)
		}
		if a.MaxBackendEventsPerSecond < 0 {
			bad(p+".max_backend_events_per_second", "must not be negative, got %d", a.MaxBackendEventsPerSecond)
		}
		for j, w := range a.Webhooks {
			wp := fmt.Sprintf("%s.webhooks[%d]", p, j)
			if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(wp+".url", "must be an absolute http:// or https:// URL, got %q", w.URL)
			}
			if len(w.EventTypes) == 0 {
				bad(wp+".event_types", "is required: list any of %s", strings.Join(WebhookEventTypes, ", "))
			}
			for _, t := range w.EventTypes {
				if !slices.Contains(WebhookEventTypes, t) {
					bad(wp+".event_types", "unknown event type %q (known: %s)", t, strings.Join(WebhookEventTypes, ", "))
				}
			}
		}
		if a.IdempotencyTTL.D() <= 0 {
			bad(p+".idempotency_ttl", "must be positive")
		}
		if a.CacheTTL.D() <= 0 {
			bad(p+".cache_ttl", "must be positive")
		}
		if a.UserAuthenticationTimeout.D() < 0 {
			bad(p+".user_authentication_timeout", "must not be negative")
		}
	}
	return errs
}

func setStr(p *string, d string) {
	if *p == "" {
		*p = d
	}
}

func setInt(p *int, d int) {
	if *p == 0 {
		*p = d
	}
}

func setDur(p *Duration, d time.Duration) {
	if *p == 0 {
		*p = Duration(d)
	}
}

// validConsolePath reports whether p can be the console's path: absolute, of plain
// segments, without a trailing slash, and clear of pushwire's own routes.
func validConsolePath(p string) bool {
	if len(p) < 2 || len(p) > 100 || p[0] != '/' || strings.HasSuffix(p, "/") || strings.Contains(p, "//") {
		return false
	}
	for _, r := range p {
		if !(r == '/' || r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	first, _, _ := strings.Cut(p[1:], "/")
	switch first {
	case "app", "apps", "up", "live", "ready", "usage", "stats", "metrics":
		return false
	}
	return true
}
