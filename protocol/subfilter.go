package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Filter limits (ws-protocol §3.8). Exceeding one refuses the subscription.
const (
	MaxFilterBytes     = 16 << 10
	MaxFilterDepth     = 16
	MaxFilterNodes     = 256
	MaxFilterVals      = 256
	MaxFilterEvents    = 256
	MaxFilterItemBytes = 256
)

// Filter is a parsed V2 subscription filter: an optional event-name list and an optional
// tag expression, ANDed. A nil *Filter matches everything.
type Filter struct {
	events map[string]struct{} // nil: any event
	tags   *filterNode         // nil: any tags
	expr   *Expression         // nil: no JMESPath expression
}

type filterCmp uint8

const (
	cmpEq filterCmp = iota + 1
	cmpNeq
	cmpIn
	cmpNin
	cmpEx
	cmpNex
	cmpSw
	cmpEw
	cmpCt
	cmpGt
	cmpGte
	cmpLt
	cmpLte
)

var filterCmps = map[string]filterCmp{
	"eq": cmpEq, "neq": cmpNeq, "in": cmpIn, "nin": cmpNin, "ex": cmpEx, "nex": cmpNex,
	"sw": cmpSw, "ew": cmpEw, "ct": cmpCt, "gt": cmpGt, "gte": cmpGte, "lt": cmpLt, "lte": cmpLte,
}

const cmpList = "eq, neq, in, nin, ex, nex, sw, ew, ct, gt, gte, lt, lte"

type filterOp uint8

const (
	opLeaf filterOp = iota
	opAnd
	opOr
	opNot
)

type filterNode struct {
	op    filterOp
	nodes []*filterNode
	key   string
	cmp   filterCmp
	val   string
	num   float64
	isNum bool
	vals  map[string]struct{}
}

// ParseFilter reads the tags_filter and filter members of V2 subscribe data (either may be
// absent or null). tags_filter is a FilterNode; filter is a FilterNode or a compound
// {"events":[...],"tags":FilterNode,"expression":JMESPath}, all present parts ANDed (as
// Sockudo combines them). It returns nil, nil when no filter is given, and a
// 4300 error naming the offending path otherwise.
func ParseFilter(tagsFilter, filter json.RawMessage) (*Filter, *Error) {
	var f Filter
	given := false
	if raw := bytes.TrimSpace(tagsFilter); len(raw) > 0 && string(raw) != "null" {
		n, err := parseFilterJSON(raw, "tags_filter")
		if err != nil {
			return nil, err
		}
		f.tags, given = n, true
	}
	if raw := bytes.TrimSpace(filter); len(raw) > 0 && string(raw) != "null" {
		if len(raw) > MaxFilterBytes {
			return nil, filterErr("filter", "is %d bytes, the limit is %d", len(raw), MaxFilterBytes)
		}
		var probe map[string]json.RawMessage
		if raw[0] != '{' || json.Unmarshal(raw, &probe) != nil {
			return nil, filterErr("filter", "must be an object")
		}
		_, hasKey := probe["key"]
		_, hasOp := probe["op"]
		if hasKey || hasOp {
			n, err := parseFilterJSON(raw, "filter")
			if err != nil {
				return nil, err
			}
			f.tags = andNodes(f.tags, n)
		} else {
			for k, v := range probe {
				switch k {
				case "events":
					var evs []string
					if json.Unmarshal(v, &evs) != nil {
						return nil, filterErr("filter.events", "must be an array of event names")
					}
					if len(evs) > MaxFilterEvents {
						return nil, filterErr("filter.events", "has %d names, the limit is %d", len(evs), MaxFilterEvents)
					}
					if len(evs) > 0 {
						f.events = make(map[string]struct{}, len(evs))
						for _, e := range evs {
							f.events[e] = struct{}{}
						}
					}
				case "tags":
					if t := bytes.TrimSpace(v); len(t) > 0 && string(t) != "null" {
						n, err := parseFilterJSON(t, "filter.tags")
						if err != nil {
							return nil, err
						}
						f.tags = andNodes(f.tags, n)
					}
				case "expression":
					e, err := ParseExpressionOption(v)
					if err != nil {
						return nil, err
					}
					f.expr = e
				default:
					return nil, filterErr("filter."+Truncate(k, 32), "is not a filter member (events, tags, expression)")
				}
			}
		}
		given = true
	}
	if !given || (f.events == nil && f.tags == nil && f.expr == nil) {
		return nil, nil
	}
	return &f, nil
}

func andNodes(a, b *filterNode) *filterNode {
	if a == nil {
		return b
	}
	return &filterNode{op: opAnd, nodes: []*filterNode{a, b}}
}

func filterErr(path, format string, args ...any) *Error {
	return &Error{Code: CodeChannelError, Message: "invalid filter: " + path + " " + fmt.Sprintf(format, args...)}
}

// parseFilterJSON parses one FilterNode, checking its size before decoding.
func parseFilterJSON(raw json.RawMessage, path string) (*filterNode, *Error) {
	if len(raw) > MaxFilterBytes {
		return nil, filterErr(path, "is %d bytes, the limit is %d", len(raw), MaxFilterBytes)
	}
	if maxDepth(raw) > 2*MaxFilterDepth+2 {
		return nil, filterErr(path, "is too deep: at most %d levels", MaxFilterDepth)
	}
	count := 0
	return parseFilterNode(raw, path, 1, &count)
}

// maxDepth is the deepest bracket nesting of a JSON text (strings skipped).
func maxDepth(b []byte) int {
	d, m, inStr, esc := 0, 0, false, false
	for _, c := range b {
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			if d++; d > m {
				m = d
			}
		case c == '}' || c == ']':
			d--
		}
	}
	return m
}

func parseFilterNode(raw json.RawMessage, path string, depth int, count *int) (*filterNode, *Error) {
	if depth > MaxFilterDepth {
		return nil, filterErr(path, "is too deep: at most %d levels", MaxFilterDepth)
	}
	if *count++; *count > MaxFilterNodes {
		return nil, filterErr(path, "has too many nodes: at most %d", MaxFilterNodes)
	}
	var m map[string]json.RawMessage
	if raw = bytes.TrimSpace(raw); len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
		return nil, filterErr(path, "must be an object")
	}
	str := func(k string) (string, bool, *Error) {
		v, ok := m[k]
		if !ok || string(v) == "null" {
			return "", false, nil
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			return "", true, filterErr(path+"."+k, "must be a string")
		}
		return s, true, nil
	}
	if opRaw, ok := m["op"]; ok && string(opRaw) != "null" {
		op, _, err := str("op")
		if err != nil {
			return nil, err
		}
		n := &filterNode{}
		switch op {
		case "and":
			n.op = opAnd
		case "or":
			n.op = opOr
		case "not":
			n.op = opNot
		default:
			return nil, filterErr(path+".op", "%q is not one of and, or, not", Truncate(op, 32))
		}
		for k := range m {
			if k != "op" && k != "nodes" {
				return nil, filterErr(path+"."+Truncate(k, 32), "is not allowed on an %s node", op)
			}
		}
		var kids []json.RawMessage
		if json.Unmarshal(m["nodes"], &kids) != nil {
			return nil, filterErr(path+".nodes", "must be an array of filter nodes")
		}
		switch {
		case n.op == opNot && len(kids) != 1:
			return nil, filterErr(path+".nodes", "of a not node must hold exactly one node, got %d", len(kids))
		case len(kids) == 0:
			return nil, filterErr(path+".nodes", "of an %s node must not be empty", op)
		}
		for i, k := range kids {
			child, err := parseFilterNode(k, fmt.Sprintf("%s.nodes[%d]", path, i), depth+1, count)
			if err != nil {
				return nil, err
			}
			n.nodes = append(n.nodes, child)
		}
		return n, nil
	}
	for k := range m {
		switch k {
		case "key", "cmp", "val", "vals":
		default:
			return nil, filterErr(path+"."+Truncate(k, 32), "is not a filter node member (op, nodes, key, cmp, val, vals)")
		}
	}
	key, _, err := str("key")
	if err != nil {
		return nil, err
	}
	if key == "" || len(key) > MaxFilterItemBytes {
		return nil, filterErr(path+".key", "must be 1..%d bytes", MaxFilterItemBytes)
	}
	cmpName, _, err := str("cmp")
	if err != nil {
		return nil, err
	}
	cmp, ok := filterCmps[cmpName]
	if !ok {
		return nil, filterErr(path+".cmp", "%q is not one of %s", Truncate(cmpName, 32), cmpList)
	}
	n := &filterNode{op: opLeaf, key: key, cmp: cmp}
	switch cmp {
	case cmpEx, cmpNex:
	case cmpIn, cmpNin:
		var vals []json.RawMessage
		if v, ok := m["vals"]; !ok || string(bytes.TrimSpace(v)) == "null" || json.Unmarshal(v, &vals) != nil {
			return nil, filterErr(path+".vals", "is required for %s and must be an array", cmpName)
		}
		if len(vals) > MaxFilterVals {
			return nil, filterErr(path+".vals", "has %d values, the limit is %d", len(vals), MaxFilterVals)
		}
		n.vals = make(map[string]struct{}, len(vals))
		for i, v := range vals {
			s, err := scalarString(v, fmt.Sprintf("%s.vals[%d]", path, i))
			if err != nil {
				return nil, err
			}
			n.vals[s] = struct{}{}
		}
	default:
		v, ok := m["val"]
		if !ok || string(v) == "null" {
			return nil, filterErr(path+".val", "is required for %s", cmpName)
		}
		s, err := scalarString(v, path+".val")
		if err != nil {
			return nil, err
		}
		n.val = s
		if cmp >= cmpGt {
			f, perr := strconv.ParseFloat(s, 64)
			n.num, n.isNum = f, perr == nil
		}
	}
	return n, nil
}

// scalarString reads a string, number or boolean as a string (numbers and booleans are
// coerced to their JSON text).
func scalarString(v json.RawMessage, path string) (string, *Error) {
	v = bytes.TrimSpace(v)
	var s string
	switch {
	case len(v) > 0 && v[0] == '"':
		if json.Unmarshal(v, &s) != nil {
			return "", filterErr(path, "must be a string, number or boolean")
		}
	case string(v) == "true" || string(v) == "false":
		s = string(v)
	default:
		var n json.Number
		if json.Unmarshal(v, &n) != nil {
			return "", filterErr(path, "must be a string, number or boolean")
		}
		s = n.String()
	}
	if len(s) > MaxFilterItemBytes {
		return "", filterErr(path, "is longer than %d bytes", MaxFilterItemBytes)
	}
	return s, nil
}

// MatchMessage reports whether a message passes the filter: its event name (the original
// name of a mutation) and tags first, then the expression over doc (built once per message,
// only when an expression needs it; each distinct expression evaluated once per message). Without an expression it does not allocate.
func (f *Filter) MatchMessage(m *Message, doc *LazyDocument) bool {
	if !f.Match(m.FilterEvent(), m.Tags) {
		return false
	}
	return f == nil || f.expr == nil || doc.Match(f.expr)
}

// HasExpression reports whether the filter carries a JMESPath expression.
func (f *Filter) HasExpression() bool { return f != nil && f.expr != nil }

// Match reports whether a message with this event name and tags passes the event and tag
// parts of the filter (the expression is not evaluated: see MatchMessage). It does not
// allocate.
func (f *Filter) Match(event string, tags map[string]string) bool {
	if f == nil {
		return true
	}
	if f.events != nil {
		if _, ok := f.events[event]; !ok {
			return false
		}
	}
	return f.tags == nil || f.tags.match(tags)
}

func (n *filterNode) match(tags map[string]string) bool {
	switch n.op {
	case opAnd:
		for _, c := range n.nodes {
			if !c.match(tags) {
				return false
			}
		}
		return true
	case opOr:
		for _, c := range n.nodes {
			if c.match(tags) {
				return true
			}
		}
		return false
	case opNot:
		return !n.nodes[0].match(tags)
	}
	v, present := tags[n.key]
	switch n.cmp {
	case cmpEx:
		return present
	case cmpNex:
		return !present
	case cmpNeq:
		// True when the key is absent or holds another value.
		return !present || v != n.val
	case cmpNin:
		_, ok := n.vals[v]
		return !present || !ok
	}
	if !present {
		return false
	}
	switch n.cmp {
	case cmpEq:
		return v == n.val
	case cmpIn:
		_, ok := n.vals[v]
		return ok
	case cmpSw:
		return strings.HasPrefix(v, n.val)
	case cmpEw:
		return strings.HasSuffix(v, n.val)
	case cmpCt:
		return strings.Contains(v, n.val)
	}
	if !n.isNum || !looksNumeric(v) {
		return false
	}
	x, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return false
	}
	switch n.cmp {
	case cmpGt:
		return x > n.num
	case cmpGte:
		return x >= n.num
	case cmpLt:
		return x < n.num
	default:
		return x <= n.num
	}
}

// looksNumeric reports whether s has the syntax of a decimal float (digits, one dot, an
// optional sign and exponent) and a modest length, so that ParseFloat — whose errors
// allocate — only runs on values it will accept.
func looksNumeric(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	if t := strings.TrimLeft(s, "+-"); strings.EqualFold(t, "inf") || strings.EqualFold(t, "infinity") || strings.EqualFold(t, "nan") {
		return true
	}
	digits, dot, exp := false, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits = true
		case c == '.' && !dot && !exp:
			dot = true
		case (c == 'e' || c == 'E') && digits && !exp:
			exp, digits = true, false
		case (c == '+' || c == '-') && (i == 0 || s[i-1] == 'e' || s[i-1] == 'E'):
		default:
			return false
		}
	}
	if !digits {
		return false
	}
	if exp {
		// Out-of-range exponents make ParseFloat return an error value.
		i := strings.IndexAny(s, "eE")
		e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		if err != nil || e > 300 || e < -300 {
			return false
		}
	}
	return true
}
