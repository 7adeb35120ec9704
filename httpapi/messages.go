package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// Mutable messages (http-api §3.3): update, delete and append a message created by a
// publish, and read its latest version and its version history.

// mutationBody is the body of .../update, .../delete and .../append. Members that are
// absent or null are not given.
type mutationBody struct {
	Name        json.RawMessage `json:"name"`
	Data        json.RawMessage `json:"data"`
	Extras      json.RawMessage `json:"extras"`
	ClearFields []string        `json:"clear_fields"`
	ClientID    *string         `json:"client_id"`
	SocketID    *string         `json:"socket_id"`
	Description *string         `json:"description"`
	Metadata    json.RawMessage `json:"metadata"`
	OpID        *string         `json:"op_id"`
}

// given reports whether a raw member was present and not null.
func given(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && string(raw) != "null"
}

// parseMutation validates a mutation body for action.
func parseMutation(action protocol.Action, body []byte) (protocol.Mutation, string, *apiError) {
	op := protocol.Mutation{Action: action}
	var b mutationBody
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeJSON(body, &b); err != nil {
			return op, "", err
		}
	} else if action != protocol.ActionDelete {
		return op, "", badRequest("Request body is empty: %s needs a JSON object", action)
	}
	if given(b.Name) {
		if action != protocol.ActionUpdate {
			return op, "", badRequest("%s does not take name", action)
		}
		var name string
		if b.Name[0] != '"' || json.Unmarshal(b.Name, &name) != nil {
			return op, "", badRequest("name must be a string")
		}
		op.Name = &name
	}
	if given(b.Data) {
		data := bytes.TrimSpace(b.Data)
		switch {
		case data[0] == '"':
			op.Data = append([]byte(nil), data...)
		case action == protocol.ActionAppend:
			return op, "", badRequest("append data must be a string fragment")
		default:
			// Like a publish, data is a string: other JSON is kept as its text.
			var compact bytes.Buffer
			if err := json.Compact(&compact, data); err != nil {
				return op, "", badRequest("data is not valid JSON: %v", err)
			}
			op.Data = protocol.Str(compact.String())
		}
	} else if action == protocol.ActionAppend {
		return op, "", badRequest("append needs data: a string fragment")
	}
	if given(b.Extras) {
		f, aerr := parseV2Fields(nil, b.Extras, nil)
		if aerr != nil {
			return op, "", aerr
		}
		op.Extras = f.extras
	}
	if len(b.ClearFields) > 0 && action == protocol.ActionAppend {
		return op, "", badRequest("append does not take clear_fields")
	}
	seen := map[string]bool{}
	for _, f := range b.ClearFields {
		if seen[f] {
			return op, "", badRequest("clear_fields lists %q twice", f)
		}
		seen[f] = true
		var replaced bool
		switch {
		case f == "name" && action == protocol.ActionUpdate:
			replaced, op.ClearName = op.Name != nil, true
		case f == "data":
			replaced, op.ClearData = op.Data != nil, true
		case f == "extras":
			replaced, op.ClearExtras = op.Extras != nil, true
		default:
			allowed := "data or extras"
			if action == protocol.ActionUpdate {
				allowed = "name, data or extras"
			}
			return op, "", badRequest("clear_fields: %q is not a field %s may clear (%s)", f, action, allowed)
		}
		if replaced {
			return op, "", badRequest("%s is both replaced and listed in clear_fields", f)
		}
	}
	if action == protocol.ActionUpdate && op.Name == nil && op.Data == nil && op.Extras == nil && len(b.ClearFields) == 0 {
		return op, "", badRequest("update needs at least one of name, data, extras or clear_fields")
	}
	if b.ClientID != nil {
		op.ClientID = *b.ClientID
	}
	if b.Description != nil {
		op.Description = *b.Description
	}
	if given(b.Metadata) {
		var compact bytes.Buffer
		if err := json.Compact(&compact, b.Metadata); err != nil {
			return op, "", badRequest("metadata is not valid JSON: %v", err)
		}
		op.Metadata = compact.Bytes()
	}
	if b.OpID != nil {
		if *b.OpID == "" || len(*b.OpID) > protocol.MaxOpIDLen {
			return op, "", badRequest("op_id must be 1 to %d bytes", protocol.MaxOpIDLen)
		}
		op.OpID = *b.OpID
	}
	socket := ""
	if b.SocketID != nil {
		socket = *b.SocketID
		if !protocol.ValidSocketID(socket) {
			return op, "", badRequest("socket_id is not a valid socket id")
		}
	}
	return op, socket, nil
}

// messageParams reads the channel and message serial of a messages route.
func messageParams(r *http.Request, s *signed) (string, string, *apiError) {
	name, aerr := channelParam(r, s.app.MaxChannelNameLength)
	if aerr != nil {
		return "", "", aerr
	}
	serial, err := pathParam(r, "serial")
	if err != nil || !protocol.ValidSerial(serial) {
		return "", "", badRequest("message_serial in the path must be 1 to %d bytes without whitespace", protocol.MaxSerialLen)
	}
	return name, serial, nil
}

// mutate answers POST /apps/{appID}/channels/{channel}/messages/{serial}/{update|delete|append}.
func (a *api) mutate(action protocol.Action) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := signedOf(r)
		name, serial, aerr := messageParams(r, s)
		if aerr != nil {
			fail(w, aerr)
			return
		}
		op, socket, aerr := parseMutation(action, s.body)
		if aerr != nil {
			fail(w, aerr)
			return
		}
		res, herr := a.hub.Mutate(r.Context(), s.app.ID, channels.MutationRequest{Channel: name, MessageSerial: serial, Op: op, SocketID: socket})
		if herr != nil {
			writeError(w, herr.Status, herr.Kind, herr.Message)
			return
		}
		writeJSON(w, http.StatusOK, res)
	}
}

// getMessage answers GET /apps/{appID}/channels/{channel}/messages/{serial}: the latest
// version, {"channel","item"}.
func (a *api) getMessage(w http.ResponseWriter, r *http.Request) {
	s := signedOf(r)
	name, serial, aerr := messageParams(r, s)
	if aerr != nil {
		fail(w, aerr)
		return
	}
	item, herr := a.hub.ReadMessage(r.Context(), s.app.ID, name, serial)
	if herr != nil {
		writeError(w, herr.Status, herr.Kind, herr.Message)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Channel string          `json:"channel"`
		Item    json.RawMessage `json:"item"`
	}{name, item})
}

// getVersions answers GET .../messages/{serial}/versions: limit (default and max 100),
// direction (newest_first, the default, or oldest_first) and cursor (next_cursor of the
// previous page).
func (a *api) getVersions(w http.ResponseWriter, r *http.Request) {
	s := signedOf(r)
	name, serial, aerr := messageParams(r, s)
	if aerr != nil {
		fail(w, aerr)
		return
	}
	dir := protocol.NewestFirst
	switch d := s.param("direction"); d {
	case "", "newest_first":
	case "oldest_first":
		dir = protocol.OldestFirst
	default:
		fail(w, badRequest("direction must be newest_first or oldest_first"))
		return
	}
	limit, aerr := pageLimit(s)
	if aerr != nil {
		fail(w, aerr)
		return
	}
	page, herr := a.hub.ReadVersions(r.Context(), s.app.ID, name, serial, dir, limit, s.param("cursor"))
	if herr != nil {
		writeError(w, herr.Status, herr.Kind, herr.Message)
		return
	}
	writeJSON(w, http.StatusOK, page)
}
