package protocol

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
)

// Delta algorithm names a client may list in sockudo:enable_delta_compression.
const (
	DeltaAlgFossil  = "fossil"
	DeltaAlgXdelta3 = "xdelta3"
)

// MaxDeltaAlgorithms bounds the list of sockudo:enable_delta_compression.
const MaxDeltaAlgorithms = 16

// ParseDeltaAlgorithms reads the data of sockudo:enable_delta_compression
// ({"algorithms":["fossil","xdelta3"]}, an object or a JSON string holding one) and returns
// the algorithms this server supports in the client's order of preference, "vcdiff" read as
// "xdelta3", duplicates dropped. Absent data, an absent or null list gives nil: the client
// leaves the choice to the server. A list naming no supported algorithm, or a malformed one,
// is a 4000 error saying which algorithms there are.
func ParseDeltaAlgorithms(data json.RawMessage) ([]string, *Error) {
	if t := bytes.TrimSpace(data); len(t) == 0 || string(t) == "null" || string(t) == `""` {
		return nil, nil
	}
	var w struct {
		Algorithms json.RawMessage `json:"algorithms"`
	}
	if err := DecodeData(data, &w); err != nil {
		return nil, &Error{Code: CodeGeneric, Message: `Invalid enable_delta_compression data: expected {"algorithms":["fossil","xdelta3"]}`}
	}
	raw := bytes.TrimSpace(w.Algorithms)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var names []json.RawMessage
	if json.Unmarshal(raw, &names) != nil {
		return nil, &Error{Code: CodeGeneric, Message: "Invalid enable_delta_compression data: algorithms must be an array of names"}
	}
	if len(names) > MaxDeltaAlgorithms {
		return nil, Errorf(CodeGeneric, "Invalid enable_delta_compression data: %d algorithms, the limit is %d", len(names), MaxDeltaAlgorithms)
	}
	var out []string
	for _, n := range names {
		var s string
		if json.Unmarshal(n, &s) != nil {
			return nil, &Error{Code: CodeGeneric, Message: "Invalid enable_delta_compression data: algorithms must be an array of names"}
		}
		var alg string
		switch strings.ToLower(s) {
		case "fossil":
			alg = DeltaAlgFossil
		case "xdelta3", "vcdiff":
			alg = DeltaAlgXdelta3
		default:
			continue
		}
		if !slices.Contains(out, alg) {
			out = append(out, alg)
		}
	}
	if len(out) == 0 {
		return nil, &Error{Code: CodeGeneric, Message: `Delta compression refused: none of the requested algorithms is supported; this server offers "fossil" and "xdelta3" (vcdiff)`}
	}
	return out, nil
}
