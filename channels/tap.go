package channels

// Tap receives a live copy of what happens to an app — connections, subscriptions,
// publishes, errors — for an operator watching it (the debug console). It is optional
// (Options.Tap) and built so that nobody watching costs nothing on the publish path: each
// producer asks Watching first, on its own goroutine, and builds the Activity only when the
// answer is yes. Watching must therefore be cheap (an atomic load) and Record must never
// block (drop instead). Both are safe for concurrent use.
//
// The hub reports subscriptions, client events and server-side publishes; the WebSocket
// gateway (server), the REST API (httpapi) and the webhook sender report the rest through the
// same interface.
type Tap interface {
	// Watching reports whether someone watches appID now.
	Watching(appID string) bool
	// Record hands over one activity of an app someone watches.
	Record(Activity)
}

// ActivityKind names what an Activity reports.
type ActivityKind string

// Activity kinds.
const (
	ActConnected    ActivityKind = "connected"     // a connection completed the handshake
	ActDisconnected ActivityKind = "disconnected"  // a connection ended (Code, Detail = reason)
	ActSubscribed   ActivityKind = "subscribed"    // a connection joined Channel (UserID on presence)
	ActUnsubscribed ActivityKind = "unsubscribed"  // a connection left Channel
	ActClientEvent  ActivityKind = "client_event"  // a client event was relayed
	ActPublish      ActivityKind = "api_publish"   // a server-side publish (REST API, console)
	ActWebhook      ActivityKind = "webhook"       // a webhook request was sent (Code = status, 0 network error)
	ActError        ActivityKind = "error"         // an error went to a client or an API caller
	ActSlowConsumer ActivityKind = "slow_consumer" // a connection closed with 4100, its queue full
)

// Activity is one event of the Tap's feed. Fields that do not apply are empty.
type Activity struct {
	Kind     ActivityKind
	AppID    string
	Channel  string
	Event    string
	SocketID string
	UserID   string
	// Data is the payload as published (a client event's JSON, a publish's data string).
	Data string
	// Code is a close code, an error code or an HTTP status.
	Code int
	// Detail is a close reason, an error message or a short description.
	Detail string
}

// tapping returns the tap when someone watches the app, else nil.
func (a *appState) tapping() Tap {
	if t := a.hub.tap; t != nil && t.Watching(a.cfg.ID) {
		return t
	}
	return nil
}
