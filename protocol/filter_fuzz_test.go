package protocol

// Fuzz targets that check what a parsed filter means, not only that parsing survives
// (FuzzParseFilter in subfilter_test.go): one leaf against a direct reading of the spec, and
// any accepted tree against its negation and its and/or with itself.

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// refLeaf is ws-protocol §3.8 read literally, with neq/nin true for an absent key.
func refLeaf(cmp, val string, set []string, tag string, present bool) bool {
	num := func() (x, y float64, ok bool) {
		a, errA := strconv.ParseFloat(tag, 64)
		b, errB := strconv.ParseFloat(val, 64)
		return a, b, present && errA == nil && errB == nil
	}
	inSet := false
	for _, s := range set {
		inSet = inSet || s == tag
	}
	switch cmp {
	case "eq":
		return present && tag == val
	case "neq":
		return !present || tag != val
	case "in":
		return present && inSet
	case "nin":
		return !present || !inSet
	case "ex":
		return present
	case "nex":
		return !present
	case "sw":
		return present && strings.HasPrefix(tag, val)
	case "ew":
		return present && strings.HasSuffix(tag, val)
	case "ct":
		return present && strings.Contains(tag, val)
	}
	x, y, ok := num()
	if !ok {
		return false
	}
	switch cmp {
	case "gt":
		return x > y
	case "gte":
		return x >= y
	case "lt":
		return x < y
	}
	return x <= y
}

// FuzzFilterLeaf builds one leaf from fuzzed parts (val sent as a JSON number when it is one)
// and compares Match with refLeaf for a message with and without the key.
func FuzzFilterLeaf(f *testing.F) {
	for _, s := range [][4]string{
		{"market", "eq", "spot", "spot"}, {"m", "neq", "a", "b"}, {"a", "in", "x", "x"}, {"a", "nin", "x", "y"},
		{"a", "ex", "", ""}, {"a", "nex", "", ""}, {"n", "sw", "ab", "abc"}, {"n", "ew", "bc", "abc"}, {"n", "ct", "", "z"},
		{"p", "gt", "100", "100.5"}, {"p", "gte", "1e2", "100"}, {"p", "lt", "-0", "0"}, {"p", "lte", "NaN", "NaN"},
		{"p", "gt", "1", "inf"}, {"p", "lt", "0x1p-2", "0.3"}, {"p", "gt", "1_000", "2000"}, {"", "eq", "x", "x"},
	} {
		f.Add(s[0], s[1], s[2], s[3], true)
	}
	f.Fuzz(func(t *testing.T, key, cmp, val, tag string, asNumber bool) {
		if !utf8.ValidString(key) || !utf8.ValidString(val) {
			return // JSON would carry U+FFFD instead: a different filter
		}
		var v any = val
		// (Not with whitespace around it: JSON allows it, but the value is then compacted.)
		if asNumber && json.Valid([]byte(val)) && val != "" && strings.TrimSpace(val) == val && (val[0] == '-' || val[0] >= '0' && val[0] <= '9') {
			v = json.RawMessage(val) // a JSON number: coerced back to this very text
		}
		node, err := json.Marshal(map[string]any{"key": key, "cmp": cmp, "val": v, "vals": []any{v, "x"}})
		if err != nil {
			return // val looked like a number but is not one JSON accepts as a value
		}
		fl, perr := ParseFilter(node, nil)
		_, knownCmp := filterCmps[cmp]
		valid := knownCmp && key != "" && len(key) <= MaxFilterItemBytes && len(val) <= MaxFilterItemBytes
		if perr != nil {
			if valid || perr.Code != CodeChannelError || fl != nil {
				t.Fatalf("%s refused: %v", node, perr)
			}
			return
		}
		if !valid {
			t.Fatalf("%s accepted", node)
		}
		set := []string{val, "x"}
		if got, want := fl.Match("e", map[string]string{key: tag, key + "!": "other"}), refLeaf(cmp, val, set, tag, true); got != want {
			t.Fatalf("%s with %s=%q: Match = %v, want %v", node, key, tag, got, want)
		}
		if got, want := fl.Match("e", map[string]string{key + "!": tag}), refLeaf(cmp, val, set, "", false); got != want {
			t.Fatalf("%s without the key: Match = %v, want %v", node, got, want)
		}
	})
}

// FuzzFilterAlgebra checks any accepted FilterNode F against not(F), and(F,F) and or(F,F).
func FuzzFilterAlgebra(f *testing.F) {
	f.Add(`{"op":"and","nodes":[{"key":"market","cmp":"eq","val":"spot"},{"op":"not","nodes":[{"key":"asset","cmp":"in","vals":["DOGE","SHIB"]}]},{"key":"price","cmp":"gte","val":"100"}]}`, "price", "150")
	f.Add(`{"op":"or","nodes":[{"key":"a","cmp":"nex"},{"key":"b","cmp":"lt","val":0}]}`, "b", "-1")
	f.Add(`{"key":"k","cmp":"ct","val":""}`, "k", "")
	f.Fuzz(func(t *testing.T, node, key, tag string) {
		fl, err := ParseFilter(json.RawMessage(node), nil)
		if err != nil || fl == nil || !json.Valid([]byte(node)) {
			return
		}
		wrap := func(op string, n int) *Filter {
			w := `{"op":"` + op + `","nodes":[` + strings.TrimSuffix(strings.Repeat(node+",", n), ",") + `]}`
			g, err := ParseFilter(json.RawMessage(w), nil)
			if err != nil {
				return nil // one level or one copy too many for the limits
			}
			return g
		}
		not, and, or := wrap("not", 1), wrap("and", 2), wrap("or", 2)
		for _, tags := range []map[string]string{nil, {key: tag}, {key: tag, "market": "spot", "price": tag}} {
			for _, ev := range []string{"e", tag} {
				m := fl.Match(ev, tags)
				if not != nil && not.Match(ev, tags) == m {
					t.Fatalf("%s: not(F) = F = %v for %v", node, m, tags)
				}
				if and != nil && and.Match(ev, tags) != m {
					t.Fatalf("%s: and(F,F) != F (%v) for %v", node, m, tags)
				}
				if or != nil && or.Match(ev, tags) != m {
					t.Fatalf("%s: or(F,F) != F (%v) for %v", node, m, tags)
				}
			}
		}
	})
}
