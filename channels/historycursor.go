package channels

import (
	"encoding/base64"
	"encoding/json"

	"github.com/pushwire/pushwire/config"
)

// The signed page cursor and errors of the history reads, for the feature packages that
// page their own serial-numbered streams the same way (presencehistory).

// NewHistoryError returns a refused read: status is the HTTP status, kind its snake_case
// code; the WebSocket code follows from the status.
func NewHistoryError(status int, kind, msg string) *HistoryError { return histErr(status, kind, msg) }

// HistoryBoundsOf returns the bounds of r as a history page echoes them.
func HistoryBoundsOf(r HistoryRequest) HistoryBounds { return boundsOf(r) }

// SignHistoryCursor returns the cursor of the position serial of stream streamID of
// scope (a channel, or a name of one of its streams) read as r, signed with app's secret.
func SignHistoryCursor(app config.App, scope string, r HistoryRequest, streamID string, serial uint64) string {
	c := cursor{Version: 1, AppID: app.ID, Channel: scope, StreamID: streamID, Serial: serial, Direction: r.Direction.String(), Bounds: boundsOf(r)}
	c.Sig = c.sign(app.Secret)
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// OpenHistoryCursor checks a cursor of SignHistoryCursor: app signed it for scope, the
// direction and the bounds of r. It returns its stream and serial.
func OpenHistoryCursor(app config.App, scope string, r HistoryRequest) (streamID string, serial uint64, herr *HistoryError) {
	c, herr := decodeCursor(app, r.Cursor, scope, r.Direction, boundsOf(r))
	return c.StreamID, c.Serial, herr
}
