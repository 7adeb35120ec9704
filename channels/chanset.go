package channels

import "iter"

// chanSet is a connection's subscribed channels, each with the presence user id held there
// ("" off presence channels). It is a slice while small — most connections hold a few
// channels, and a Go map costs some 270 bytes even for one — and a map past chanSetSmall.
type chanSet struct {
	small []chanEntry
	big   map[string]string
}

type chanEntry struct{ name, userID string }

// chanSetSmall is the most channels kept in the slice.
const chanSetSmall = 16

func (s *chanSet) get(name string) (string, bool) {
	if s.big != nil {
		u, ok := s.big[name]
		return u, ok
	}
	for _, e := range s.small {
		if e.name == name {
			return e.userID, true
		}
	}
	return "", false
}

func (s *chanSet) has(name string) bool {
	_, ok := s.get(name)
	return ok
}

func (s *chanSet) set(name, userID string) {
	if s.big != nil {
		s.big[name] = userID
		return
	}
	for i := range s.small {
		if s.small[i].name == name {
			s.small[i].userID = userID
			return
		}
	}
	if len(s.small) < chanSetSmall {
		s.small = append(s.small, chanEntry{name, userID})
		return
	}
	s.big = make(map[string]string, chanSetSmall*2)
	for _, e := range s.small {
		s.big[e.name] = e.userID
	}
	s.big[name] = userID
	s.small = nil
}

// del removes name and reports whether it was there.
func (s *chanSet) del(name string) bool {
	if s.big != nil {
		_, ok := s.big[name]
		delete(s.big, name)
		return ok
	}
	for i, e := range s.small {
		if e.name == name {
			last := len(s.small) - 1
			s.small[i] = s.small[last]
			s.small[last] = chanEntry{}
			s.small = s.small[:last]
			return true
		}
	}
	return false
}

// names yields every channel name (in no particular order). The set must not change
// during the loop.
func (s *chanSet) names() iter.Seq[string] {
	return func(yield func(string) bool) {
		if s.big != nil {
			for n := range s.big {
				if !yield(n) {
					return
				}
			}
			return
		}
		for _, e := range s.small {
			if !yield(e.name) {
				return
			}
		}
	}
}

func (s *chanSet) clear() { s.small, s.big = nil, nil }

func (s *chanSet) len() int {
	if s.big != nil {
		return len(s.big)
	}
	return len(s.small)
}
