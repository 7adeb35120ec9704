package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/pushwire/pushwire/protocol"
)

// Error codes of the JSON error envelope.
const (
	codeInvalidInput     = "invalid_input"
	codeLimitExceeded    = "limit_exceeded"
	codeMissingChannel   = "missing_channel_info"
	codeAuthFailed       = "auth_failed"
	codeAppNotFound      = "app_not_found"
	codePayloadTooLarge  = "payload_too_large"
	codeInternal         = "internal_error"
	internalErrorMessage = "Internal server error"
)

// apiError is an HTTP error: its status, its snake_case code and a message for the caller.
type apiError struct {
	status int
	code   string
	msg    string
}

// Error implements error.
func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg) }

// prefixed returns a copy of e whose message starts with prefix (such as "batch[2]: ").
func (e *apiError) prefixed(prefix string) *apiError {
	return &apiError{status: e.status, code: e.code, msg: prefix + e.msg}
}

func badRequest(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, codeInvalidInput, fmt.Sprintf(format, args...)}
}

func limitExceeded(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, codeLimitExceeded, fmt.Sprintf(format, args...)}
}

func authFailed(format string, args ...any) *apiError {
	return &apiError{http.StatusUnauthorized, codeAuthFailed, fmt.Sprintf(format, args...)}
}

func tooLarge(format string, args ...any) *apiError {
	return &apiError{http.StatusRequestEntityTooLarge, codePayloadTooLarge, fmt.Sprintf(format, args...)}
}

var errInternal = &apiError{http.StatusInternalServerError, codeInternal, internalErrorMessage}

// errorBody is the JSON envelope of every error answer.
type errorBody struct {
	Error  string `json:"error"`
	Code   string `json:"code"`
	Status int    `json:"status"`
}

// writeError answers with the JSON error envelope and status.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Error: msg, Code: code, Status: status})
}

// fail answers with err.
func fail(w http.ResponseWriter, err *apiError) {
	if err == errBusy {
		w.Header().Set("Retry-After", "1")
	}
	writeError(w, err.status, err.code, err.msg)
}

// internalErrorJSON is the 500 body, prebuilt so that it can be sent when encoding fails.
var internalErrorJSON = []byte(`{"error":"Internal server error","code":"internal_error","status":500}`)

// writeJSON answers with v as JSON. HTML characters are not escaped (so quoted channel names
// and cached frames read as sent), and there is no trailing newline.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b := encodeJSON(v)
	if len(b) == 0 {
		status, b = http.StatusInternalServerError, internalErrorJSON
	}
	writeRawJSON(w, status, b)
}

// encodeJSON encodes v the way writeJSON sends it; nil when v cannot be encoded.
func encodeJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// writeRawJSON answers with an already encoded JSON body.
func writeRawJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// decodeJSON decodes a JSON object body into v. Malformed JSON and wrong field types are
// 400 invalid_input; a type error names the field.
func decodeJSON(body []byte, v any) *apiError {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("Request body is empty: expected a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te) && te.Field == "":
			return badRequest("Invalid JSON body: expected an object, got %s", te.Value)
		case errors.As(err, &te):
			return badRequest("Invalid JSON body: field %q must be %s, got %s", te.Field, jsonKind(te.Type.String()), te.Value)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return badRequest("Invalid JSON body: unexpected end of input")
		case errors.As(err, &se):
			return badRequest("Invalid JSON body: syntax error at offset %d: %v", se.Offset, se)
		default:
			return badRequest("Invalid JSON body: %v", err)
		}
	}
	if rest := bytes.TrimSpace(body[dec.InputOffset():]); len(rest) > 0 {
		return badRequest("Invalid JSON body: trailing data after the JSON value at offset %d", dec.InputOffset())
	}
	return nil
}

// jsonKind names a Go type as the JSON a caller must send.
func jsonKind(goType string) string {
	goType = strings.TrimLeft(goType, "*") // an optional field is a pointer
	switch {
	case goType == "string":
		return "a string"
	case goType == "[]string":
		return "an array of strings"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "bool":
		return "a boolean"
	}
	return "an object"
}

// channelError is the 400 for an invalid channel name; the message always names the channel.
func channelError(name string, perr *protocol.Error) *apiError {
	quoted := strconv.Quote(protocol.Truncate(name, 64))
	if strings.Contains(perr.Message, quoted) {
		return badRequest("%s", perr.Message)
	}
	return badRequest("%s (channel %s)", perr.Message, quoted)
}

// splitInfo parses an info parameter, "user_count,subscription_count", into a set.
func splitInfo(s string) map[string]bool {
	m := map[string]bool{}
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			m[f] = true
		}
	}
	return m
}
