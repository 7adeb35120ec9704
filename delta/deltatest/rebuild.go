package deltatest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
)

// markersRE matches the delta markers a server appends to full frames.
var markersRE = regexp.MustCompile(`,"__delta_seq":\d+|"__delta_seq":\d+,|,"__conflation_key":"[^"]*"|"__conflation_key":"[^"]*",`)

// Rebuilder turns the frames of a delta-compressed V2 subscription back into full frames,
// the way sockudo-js does: the raw text of a full frame minus its markers is a base (per
// conflation key, by __delta_seq); a sockudo:delta frame applies to the base of its
// base_index and becomes the base of its seq. Apply is the decoder, e.g. delta.Apply (it
// is passed in so that the delta package's own tests may use this one).
type Rebuilder struct {
	apply func(algorithm string, base, delta []byte) ([]byte, error)
	bases map[string]map[uint64][]byte
	// Deltas and Fulls count the delta and full frames seen.
	Deltas, Fulls int
}

// NewRebuilder returns a Rebuilder decoding with apply.
func NewRebuilder(apply func(algorithm string, base, delta []byte) ([]byte, error)) *Rebuilder {
	return &Rebuilder{apply: apply, bases: map[string]map[uint64][]byte{}}
}

// Bases returns how many bases the conflation key has.
func (r *Rebuilder) Bases(key string) int { return len(r.bases[key]) }

// Rebuild returns the full frame text raw stands for, and whether raw was a delta frame.
func (r *Rebuilder) Rebuild(raw []byte) ([]byte, bool, error) {
	var f struct {
		Event    string          `json:"event"`
		Data     json.RawMessage `json:"data"`
		DeltaSeq *uint64         `json:"__delta_seq"`
		Key      string          `json:"__conflation_key"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, false, fmt.Errorf("frame %s: %w", raw, err)
	}
	if f.Event != "sockudo:delta" {
		if f.DeltaSeq == nil {
			return nil, false, fmt.Errorf("full frame without __delta_seq: %s", raw)
		}
		base := markersRE.ReplaceAll(raw, nil)
		if r.bases[f.Key] == nil {
			r.bases[f.Key] = map[uint64][]byte{}
		}
		r.bases[f.Key][*f.DeltaSeq] = base
		r.Fulls++
		return base, false, nil
	}
	var d struct {
		Delta     string `json:"delta"`
		Seq       uint64 `json:"seq"`
		Algorithm string `json:"algorithm"`
		Key       string `json:"conflation_key"`
		BaseIndex uint64 `json:"base_index"`
	}
	if err := json.Unmarshal(f.Data, &d); err != nil {
		return nil, false, fmt.Errorf("delta frame %s: %w", raw, err)
	}
	base, ok := r.bases[d.Key][d.BaseIndex]
	if !ok {
		return nil, false, fmt.Errorf("delta against an unknown base %d (key %q): %s", d.BaseIndex, d.Key, raw)
	}
	patch, err := base64.StdEncoding.DecodeString(d.Delta)
	if err != nil {
		return nil, false, fmt.Errorf("delta is not base64: %w", err)
	}
	out, err := r.apply(d.Algorithm, base, patch)
	if err != nil {
		return nil, false, fmt.Errorf("apply %s delta: %w", d.Algorithm, err)
	}
	if r.bases[d.Key] == nil {
		r.bases[d.Key] = map[uint64][]byte{}
	}
	r.bases[d.Key][d.Seq] = out
	r.Deltas++
	return out, true, nil
}
