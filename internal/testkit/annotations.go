package testkit

import (
	"encoding/json"
	"sort"
	"strings"
)

// ReduceAnnotations is the tests' own annotation summarizer: Sockudo's semantics written
// plainly (not the server's code), over raw sockudo_internal:annotation event data in the
// order a client received them. It returns the summary a client should hold after them,
// {type: summary}, as encoding/json decodes it (numbers float64).
//
//   - total: creates minus deletes;
//   - flag: the clients with a create, a delete removing its client;
//   - distinct: per name, the clients with a create of it;
//   - unique: per name, the clients whose latest create it is (a delete clears the client);
//   - multiple: per name, each client's summed counts (a delete drops the client's whole
//     count) and the counts of creates without a client.
func ReduceAnnotations(events []json.RawMessage) map[string]any {
	type ev struct {
		Action, Type, Name, ClientID string
		Count                        int
	}
	type state struct {
		total   int
		set     map[string]bool
		names   map[string]map[string]bool
		current map[string]string
		counts  map[string]map[string]int
		anon    map[string]int
	}
	st := map[string]*state{}
	kindOf := func(typ string) string {
		i, j := strings.Index(typ, ":"), strings.LastIndex(typ, ".")
		if i < 0 || j < i {
			return ""
		}
		return typ[i+1 : j]
	}
	for _, raw := range events {
		var e ev
		if json.Unmarshal(raw, &e) != nil {
			continue
		}
		s := st[e.Type]
		if s == nil {
			s = &state{set: map[string]bool{}, names: map[string]map[string]bool{}, current: map[string]string{},
				counts: map[string]map[string]int{}, anon: map[string]int{}}
			st[e.Type] = s
		}
		add := e.Action == "annotation.create"
		drop := func(name string) {
			delete(s.names[name], e.ClientID)
			if len(s.names[name]) == 0 {
				delete(s.names, name)
			}
		}
		join := func() {
			if s.names[e.Name] == nil {
				s.names[e.Name] = map[string]bool{}
			}
			s.names[e.Name][e.ClientID] = true
		}
		switch kindOf(e.Type) {
		case "total":
			if add {
				s.total++
			} else if s.total > 0 {
				s.total--
			}
		case "flag":
			if add {
				s.set[e.ClientID] = true
			} else {
				delete(s.set, e.ClientID)
			}
		case "distinct":
			if add {
				join()
			} else {
				drop(e.Name)
			}
		case "unique":
			if prev, ok := s.current[e.ClientID]; ok {
				drop(prev)
				delete(s.current, e.ClientID)
			}
			if add {
				s.current[e.ClientID] = e.Name
				join()
			}
		case "multiple":
			if s.counts[e.Name] == nil {
				s.counts[e.Name] = map[string]int{}
			}
			n := max(e.Count, 1)
			switch {
			case add && e.ClientID == "":
				s.anon[e.Name] += n
			case add:
				s.counts[e.Name][e.ClientID] += n
			case e.ClientID != "":
				delete(s.counts[e.Name], e.ClientID)
			}
		}
	}
	ids := func(set map[string]bool) any {
		l := []any{}
		for k := range set {
			l = append(l, k)
		}
		sort.Slice(l, func(i, j int) bool { return l[i].(string) < l[j].(string) })
		return map[string]any{"total": float64(len(l)), "clientIds": l, "clipped": false}
	}
	out := map[string]any{}
	for typ, s := range st {
		switch kindOf(typ) {
		case "total":
			out[typ] = map[string]any{"total": float64(s.total)}
		case "flag":
			out[typ] = ids(s.set)
		case "distinct", "unique":
			m := map[string]any{}
			for name, set := range s.names {
				m[name] = ids(set)
			}
			out[typ] = m
		case "multiple":
			m := map[string]any{}
			for name, c := range s.counts {
				cc, total := map[string]any{}, s.anon[name]
				for k, v := range c {
					cc[k] = float64(v)
					total += v
				}
				m[name] = map[string]any{"total": float64(total), "clientCounts": cc, "totalUnidentified": float64(s.anon[name]),
					"clipped": false, "totalClientIds": float64(len(c))}
			}
			out[typ] = m
		}
	}
	return out
}
