package deltatest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
)

// markersRE matches the delta markers a server appends to full frames.
var markersRE = regexp.MustCompile(`,"__delta_seq":\d+|"__delta_seq":\d+,|,"__conflation_key":"[^"]*"|"__conflation_key":"[^"]*",`)

// MaxBasesPerKey is how many bases the clients keep per conflation value (sockudo-js
// ChannelState.maxMessagesPerKey, sockudo_flutter _ChannelState: 30).
const MaxBasesPerKey = 30

// Rebuilder turns the frames of one delta-compressed V2 channel back into full frames by
// the rules sockudo-js (core/delta/manager.ts, channel_state.ts, sockudo.ts) and
// sockudo_flutter (delta_compression.dart) follow, reproduced from reading them:
//
//   - delta_compression_enabled sets the default algorithm (initially fossil) used by delta
//     frames that name none;
//   - a full frame with __delta_seq: its raw text minus the markers is the base; once a
//     full frame carried __conflation_key the channel keeps a list of bases per conflation
//     value (up to 30, oldest dropped, looked up by base_index), before that one single base
//     per channel (base_index ignored);
//   - a full frame without __delta_seq leaves the bases as they are;
//   - a sockudo:delta frame needs event, delta and seq; it applies to the base, and the
//     result becomes the base (under seq).
//
// Apply is the decoder, e.g. delta.Apply (passed in so that the delta package's own tests may
// use this one).
type Rebuilder struct {
	apply     func(algorithm string, base, delta []byte) ([]byte, error)
	algorithm string
	conflated bool
	single    []byte
	lists     map[string][]keyed
	// Deltas, Fulls and Unmarked count the delta frames, the full frames with __delta_seq
	// and those without.
	Deltas, Fulls, Unmarked int
}

type keyed struct {
	seq  uint64
	text []byte
}

// NewRebuilder returns a Rebuilder decoding with apply.
func NewRebuilder(apply func(algorithm string, base, delta []byte) ([]byte, error)) *Rebuilder {
	return &Rebuilder{apply: apply, algorithm: "fossil", lists: map[string][]keyed{}}
}

// Bases returns how many bases the conflation value has.
func (r *Rebuilder) Bases(key string) int { return len(r.lists[key]) }

// Algorithm is the default algorithm: the last one announced.
func (r *Rebuilder) Algorithm() string { return r.algorithm }

// Rebuild returns the full frame text raw stands for, and whether raw was a delta frame.
// A delta_compression_enabled frame sets the default algorithm and is returned as is.
func (r *Rebuilder) Rebuild(raw []byte) ([]byte, bool, error) {
	var f struct {
		Event    string          `json:"event"`
		Data     json.RawMessage `json:"data"`
		DeltaSeq *uint64         `json:"__delta_seq"`
		Key      *string         `json:"__conflation_key"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, false, fmt.Errorf("frame %s: %w", raw, err)
	}
	switch f.Event {
	case "sockudo:delta_compression_enabled", "pusher:delta_compression_enabled":
		var d struct {
			Algorithm string `json:"algorithm"`
		}
		if json.Unmarshal(f.Data, &d) == nil && d.Algorithm != "" {
			r.algorithm = d.Algorithm
		}
		return raw, false, nil
	case "sockudo:delta":
	default:
		if f.DeltaSeq == nil {
			r.Unmarked++
			return raw, false, nil
		}
		base := markersRE.ReplaceAll(slices.Clone(raw), nil)
		if f.Key != nil {
			r.conflated = true
		}
		if r.conflated && f.Key != nil {
			r.keep(*f.Key, *f.DeltaSeq, base)
		} else {
			r.single = base
		}
		r.Fulls++
		return base, false, nil
	}
	var d struct {
		Event     *string `json:"event"`
		Delta     *string `json:"delta"`
		Seq       *uint64 `json:"seq"`
		Algorithm string  `json:"algorithm"`
		Key       string  `json:"conflation_key"`
		BaseIndex *uint64 `json:"base_index"`
	}
	if err := json.Unmarshal(f.Data, &d); err != nil {
		return nil, false, fmt.Errorf("delta frame %s: %w", raw, err)
	}
	if d.Event == nil || d.Delta == nil || d.Seq == nil {
		return nil, false, fmt.Errorf("delta frame without event, delta or seq (sockudo_flutter drops it): %s", raw)
	}
	var base []byte
	if r.conflated {
		if d.BaseIndex == nil {
			return nil, false, fmt.Errorf("delta on a conflated channel without base_index: %s", raw)
		}
		for _, k := range r.lists[d.Key] {
			if k.seq == *d.BaseIndex {
				base = k.text
			}
		}
		if base == nil {
			return nil, false, fmt.Errorf("delta against an unknown base %d (key %q): %s", *d.BaseIndex, d.Key, raw)
		}
	} else if base = r.single; base == nil {
		return nil, false, fmt.Errorf("delta without a base: %s", raw)
	}
	patch, err := base64.StdEncoding.DecodeString(*d.Delta)
	if err != nil {
		return nil, false, fmt.Errorf("delta is not base64: %w", err)
	}
	alg := d.Algorithm
	if alg == "" {
		alg = r.algorithm
	}
	out, err := r.apply(alg, base, patch)
	if err != nil {
		return nil, false, fmt.Errorf("apply %s delta: %w", alg, err)
	}
	if r.conflated {
		r.keep(d.Key, *d.Seq, out)
	} else {
		r.single = out
	}
	r.Deltas++
	return out, true, nil
}

func (r *Rebuilder) keep(key string, seq uint64, text []byte) {
	l := append(r.lists[key], keyed{seq, text})
	if len(l) > MaxBasesPerKey {
		l = l[len(l)-MaxBasesPerKey:]
	}
	r.lists[key] = l
}
