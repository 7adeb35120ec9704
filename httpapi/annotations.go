package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/pushwire/pushwire/annotations"
	"github.com/pushwire/pushwire/channels"
	"github.com/pushwire/pushwire/protocol"
)

// Annotations on mutable messages (Sockudo's routes and shapes):
//
//	POST   .../messages/{serial}/annotations                      → {"annotationSerial"}
//	DELETE .../messages/{serial}/annotations/{annotationSerial}   → {"annotationSerial","deletedAnnotationSerial"}
//	GET    .../messages/{serial}/annotations?type=&limit=&from_serial=&socket_id=
//	       → {"channel","messageSerial","limit","hasMore","nextCursor","items"}
//
// The answers are annotations.Service's (Options.Annotations); without one every route is
// 422 feature_disabled.

// annotationBody is the body of a publish: Sockudo's camelCase members, with the snake_case
// spelling the rest of the API uses accepted too.
type annotationBody struct {
	Type      *string         `json:"type"`
	Name      *string         `json:"name"`
	ClientID  *string         `json:"clientId"`
	ClientID2 *string         `json:"client_id"`
	SocketID  *string         `json:"socketId"`
	SocketID2 *string         `json:"socket_id"`
	Count     json.RawMessage `json:"count"`
	Data      json.RawMessage `json:"data"`
	Encoding  *string         `json:"encoding"`
}

// parseAnnotationBody reads a publish body into an annotation and the socket it is bound
// to ("" when none).
func parseAnnotationBody(body []byte) (protocol.Annotation, string, *apiError) {
	var a protocol.Annotation
	var b annotationBody
	if err := decodeJSON(body, &b); err != nil {
		return a, "", err
	}
	if b.Type == nil {
		return a, "", badRequest("type is required (e.g. reaction:distinct.v1)")
	}
	if _, err := protocol.ParseAnnotationType(*b.Type); err != nil {
		return a, "", badRequest("%v", err)
	}
	a.Type = *b.Type
	if b.Name != nil {
		a.Name = *b.Name
	}
	client, aerr := oneOf("clientId", b.ClientID, "client_id", b.ClientID2)
	if aerr != nil {
		return a, "", aerr
	}
	a.ClientID = client
	socket, aerr := oneOf("socketId", b.SocketID, "socket_id", b.SocketID2)
	if aerr != nil {
		return a, "", aerr
	}
	if socket != "" && !protocol.ValidSocketID(socket) {
		return a, "", badRequest("socketId is not a valid socket id")
	}
	if given(b.Count) {
		n, err := strconv.ParseUint(string(bytes.TrimSpace(b.Count)), 10, 64)
		if err != nil || n == 0 {
			return a, "", badRequest("count must be an integer greater than 0")
		}
		a.Count = n
	}
	if given(b.Data) {
		var compact bytes.Buffer
		if err := json.Compact(&compact, b.Data); err != nil {
			return a, "", badRequest("data is not valid JSON: %v", err)
		}
		a.Data = compact.Bytes()
	}
	if b.Encoding != nil {
		a.Encoding = *b.Encoding
	}
	return a, socket, nil
}

// oneOf returns the value of a member given under either of two names; both given must
// agree.
func oneOf(name string, v *string, alias string, w *string) (string, *apiError) {
	switch {
	case v != nil && w != nil && *v != *w:
		return "", badRequest("%s and %s differ: give one", name, alias)
	case v != nil:
		return *v, nil
	case w != nil:
		return *w, nil
	}
	return "", nil
}

// postAnnotation answers POST .../messages/{serial}/annotations.
func (a *api) postAnnotation(w http.ResponseWriter, r *http.Request) {
	s := signedOf(r)
	name, serial, aerr := messageParams(r, s)
	if aerr != nil {
		fail(w, aerr)
		return
	}
	ann, socket, aerr := parseAnnotationBody(s.body)
	if aerr != nil {
		fail(w, aerr)
		return
	}
	if a.annotations == nil {
		writeError(w, http.StatusUnprocessableEntity, "feature_disabled", "The history store keeps no annotations")
		return
	}
	res, herr := a.annotations.Publish(r.Context(), s.app.ID, annotations.Request{Channel: name, MessageSerial: serial, Annotation: ann, SocketID: socket})
	if herr != nil {
		writeError(w, herr.Status, herr.Kind, herr.Message)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		AnnotationSerial string `json:"annotationSerial"`
	}{res.Serial})
}

// deleteAnnotation answers DELETE .../messages/{serial}/annotations/{annotationSerial}
// (socket_id in the query binds it to a connection).
func (a *api) deleteAnnotation(w http.ResponseWriter, r *http.Request) {
	s := signedOf(r)
	name, serial, aerr := messageParams(r, s)
	if aerr != nil {
		fail(w, aerr)
		return
	}
	target, err := pathParam(r, "annotationSerial")
	if err != nil {
		fail(w, badRequest("annotation serial in the path: %v", err))
		return
	}
	socket := s.param("socket_id")
	if a.annotations == nil {
		writeError(w, http.StatusUnprocessableEntity, "feature_disabled", "The history store keeps no annotations")
		return
	}
	del, dup, herr := a.annotations.Delete(r.Context(), s.app.ID, name, serial, target, socket)
	if herr != nil {
		writeError(w, herr.Status, herr.Kind, herr.Message)
		return
	}
	out := struct {
		AnnotationSerial        string `json:"annotationSerial"`
		DeletedAnnotationSerial string `json:"deletedAnnotationSerial"`
	}{del.Serial, target}
	if dup {
		out.AnnotationSerial = target // as Sockudo answers a repeated delete
	}
	writeJSON(w, http.StatusOK, out)
}

// getAnnotations answers GET .../messages/{serial}/annotations: type (one type only),
// limit (default and max 100), from_serial (the previous page's nextCursor; cursor is
// accepted too) and socket_id.
func (a *api) getAnnotations(w http.ResponseWriter, r *http.Request) {
	s := signedOf(r)
	name, serial, aerr := messageParams(r, s)
	if aerr != nil {
		fail(w, aerr)
		return
	}
	limit, aerr := pageLimit(s)
	if aerr != nil {
		fail(w, aerr)
		return
	}
	cursor := s.param("from_serial")
	if c := s.param("cursor"); c != "" {
		if cursor != "" && cursor != c {
			fail(w, badRequest("from_serial and cursor differ: give one"))
			return
		}
		cursor = c
	}
	if a.annotations == nil {
		writeError(w, http.StatusUnprocessableEntity, "feature_disabled", "The history store keeps no annotations")
		return
	}
	page, herr := a.annotations.List(r.Context(), s.app.ID, name, serial, s.param("type"), cursor, limit, s.param("socket_id"))
	if herr != nil {
		writeError(w, herr.Status, herr.Kind, herr.Message)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// pageLimit reads the limit of a paged read: a positive integer, at most (and by default)
// channels.MaxHistoryPage.
func pageLimit(s *signed) (int, *apiError) {
	v := s.param("limit")
	if v == "" {
		return channels.MaxHistoryPage, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, badRequest("limit must be a positive integer")
	}
	return min(n, channels.MaxHistoryPage), nil
}
