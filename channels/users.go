package channels

import (
	"bytes"
	"encoding/json"

	"github.com/pushwire/pushwire/protocol"
)

// MaxWatchlistSize caps the user ids of one watchlist.
const MaxWatchlistSize = 100

func (a *appState) addUserConn(userID string, c *Conn) {
	a.usersMu.Lock()
	m := a.users[userID]
	if m == nil {
		m = map[*Conn]int{}
		a.users[userID] = m
	}
	m[c]++
	a.usersMu.Unlock()
}

func (a *appState) removeUserConn(userID string, c *Conn) {
	a.usersMu.Lock()
	a.removeUserConnLocked(userID, c)
	a.usersMu.Unlock()
}

func (a *appState) removeUserConnLocked(userID string, c *Conn) {
	m := a.users[userID]
	if m == nil {
		return
	}
	if m[c]--; m[c] <= 0 {
		delete(m, c)
	}
	if len(m) == 0 {
		delete(a.users, userID)
	}
}

// SignIn handles pusher:signin: it checks the signature over socket_id::user::user_data,
// records the user, sends signin_success and the watchlist state, and tells the user's
// watchers it came online.
func (c *Conn) SignIn(data json.RawMessage) *protocol.Error {
	app := c.app
	if !app.cfg.UserAuthentication() {
		return &protocol.Error{Code: protocol.CodeUnauthorized, Message: "User authentication is disabled for this app"}
	}
	var w struct {
		Auth     string          `json:"auth"`
		UserData json.RawMessage `json:"user_data"`
	}
	if err := protocol.DecodeData(data, &w); err != nil {
		return protocol.Errorf(protocol.CodeGeneric, "Invalid signin data: %v", err)
	}
	userData, ok := protocol.StringOrRaw(w.UserData)
	if !ok || w.Auth == "" {
		return &protocol.Error{Code: protocol.CodeGeneric, Message: "Invalid signin data: auth and user_data are required"}
	}
	if !protocol.VerifyAuth(app.cfg.Key, app.cfg.Secret, w.Auth, protocol.UserStringToSign(c.socketID, userData)) {
		return &protocol.Error{Code: protocol.CodeUnauthorized, Message: "Connection not authorized for signin: invalid signature of socket_id::user::user_data"}
	}
	var u struct {
		ID        json.RawMessage `json:"id"`
		Watchlist []string        `json:"watchlist"`
	}
	if err := json.Unmarshal([]byte(userData), &u); err != nil {
		return &protocol.Error{Code: protocol.CodeUnauthorized, Message: "Invalid user_data: must be a JSON object with a string id and an optional watchlist of string ids"}
	}
	var id string
	if raw := bytes.TrimSpace(u.ID); len(raw) > 0 && raw[0] == '"' {
		_ = json.Unmarshal(raw, &id)
	}
	if id == "" || len(id) > 256 {
		return &protocol.Error{Code: protocol.CodeUnauthorized, Message: "Invalid user_data: id must be a non-empty string of at most 256 bytes"}
	}
	if len(u.Watchlist) > MaxWatchlistSize {
		return protocol.Errorf(protocol.CodeUnauthorized, "Invalid user_data: watchlist has more than %d ids", MaxWatchlistSize)
	}
	c.mu.Lock()
	prev := c.user
	if prev != "" && prev != id {
		c.mu.Unlock()
		return &protocol.Error{Code: protocol.CodeUnauthorized, Message: "Connection is already signed in as another user"}
	}
	c.user = id
	c.mu.Unlock()
	c.markAuthorized()
	v := c.sub.Version()
	c.sub.Send(protocol.SigninSuccess(v, userData))
	if prev == id {
		return nil
	}
	watchlist := u.Watchlist[:0:0]
	for _, w := range u.Watchlist {
		if w != id && w != "" { // watching yourself is meaningless and would double-notify
			watchlist = append(watchlist, w)
		}
	}
	app.signIn(id, c, watchlist)
	return nil
}

// signIn records a signed-in connection and sends watchlist events.
func (a *appState) signIn(id string, c *Conn, watchlist []string) {
	a.usersMu.Lock()
	defer a.usersMu.Unlock()
	m := a.users[id]
	if m == nil {
		m = map[*Conn]int{}
		a.users[id] = m
	}
	m[c]++
	conns := a.signedIn[id]
	first := conns == nil
	if first {
		conns = map[*Conn]struct{}{}
		a.signedIn[id] = conns
	}
	conns[c] = struct{}{}
	if !a.cfg.WatchlistEvents() {
		return
	}
	// The latest sign-in's watchlist replaces the user's previous one.
	for _, w := range a.watchlists[id] {
		delete(a.watchers[w], id)
		if len(a.watchers[w]) == 0 {
			delete(a.watchers, w)
		}
	}
	a.watchlists[id] = watchlist
	for _, w := range watchlist {
		if a.watchers[w] == nil {
			a.watchers[w] = map[string]struct{}{}
		}
		a.watchers[w][id] = struct{}{}
	}
	if len(watchlist) > 0 {
		var online, offline []string
		for _, w := range watchlist {
			if len(a.signedIn[w]) > 0 {
				online = append(online, w)
			} else {
				offline = append(offline, w)
			}
		}
		var evs []protocol.WatchlistEvent
		if len(online) > 0 {
			evs = append(evs, protocol.WatchlistEvent{Name: "online", UserIDs: online})
		}
		if len(offline) > 0 {
			evs = append(evs, protocol.WatchlistEvent{Name: "offline", UserIDs: offline})
		}
		c.sub.Send(protocol.WatchlistEvents(c.sub.Version(), evs))
	}
	if first {
		a.notifyWatchersLocked(id, "online")
	}
}

// notifyWatchersLocked tells every connection of every user watching id that id went
// online or offline. Callers hold usersMu.
func (a *appState) notifyWatchersLocked(id, name string) {
	ev := []protocol.WatchlistEvent{{Name: name, UserIDs: []string{id}}}
	var forms [3][]byte
	var bin formCache
	for watcher := range a.watchers[id] {
		for wc := range a.signedIn[watcher] {
			v := wc.sub.Version()
			if forms[v] == nil {
				forms[v] = protocol.WatchlistEvents(v, ev)
			}
			wc.sub.SendEncoded(bin.frameFor(wc, forms[v]))
		}
	}
}

// signOut forgets a signed-in connection that went away; the user's last connection going
// away tells its watchers it is offline.
func (a *appState) signOut(id string, c *Conn) {
	a.usersMu.Lock()
	defer a.usersMu.Unlock()
	a.removeUserConnLocked(id, c)
	conns := a.signedIn[id]
	delete(conns, c)
	if len(conns) > 0 {
		return
	}
	delete(a.signedIn, id)
	if a.cfg.WatchlistEvents() {
		a.notifyWatchersLocked(id, "offline")
	}
	for _, w := range a.watchlists[id] {
		delete(a.watchers[w], id)
		if len(a.watchers[w]) == 0 {
			delete(a.watchers, w)
		}
	}
	delete(a.watchlists, id)
}

// TerminateUserConnections closes every connection of the user (signed in or present in a
// presence channel under that id) with 4009, on every node of a cluster, and reports how
// many it closed on this node.
func (h *Hub) TerminateUserConnections(appID, userID string) int {
	app, ok := h.byID[appID]
	if !ok {
		return 0
	}
	app.clusterTerminate(userID) // the other nodes' connections (cluster.go)
	return h.terminateLocal(app, userID)
}

// ForceReconnectUser closes every connection of the user, on this node and (through the
// cluster) every other, with 4200 "reconnect immediately": Pusher clients reconnect at once
// and may resume. It reports how many connections this node closed.
func (h *Hub) ForceReconnectUser(appID, userID string) int {
	app, ok := h.byID[appID]
	if !ok {
		return 0
	}
	app.clusterReconnect(userID) // the other nodes' connections (cluster.go)
	return h.closeUser(app, userID, errForceReconnect)
}

// errForceReconnect is the close of ForceReconnectUser (Sockudo's code and message).
var errForceReconnect = &protocol.Error{Code: protocol.CodeReconnect, Message: "Force reconnect requested by the app."}
