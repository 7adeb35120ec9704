package protocol

import (
	"encoding/json"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// ClientText returns the JSON text a client library keeps for frame (a V2 JSON frame) after
// receiving it in w's format: what it stores as a delta base and what a delta must rebuild.
// For JSON it is frame itself. For the binary formats the clients decode the envelope and
// re-serialise it (sockudo-js: JSON.stringify of its decoded envelope, protocol.ts
// stringifyEnvelope; sockudo_flutter: jsonEncode of its decoded map, protocol_codec.dart),
// each with its own member order, number formatting, map-key order and normalisation of
// "serial" values; ClientText reproduces that text byte for byte. ok is false when the
// client's text cannot be predicted with certainty (numbers out of range, escaped
// surrogates in JSON data): such a frame is then never used as a delta base.
func ClientText(w Wire, frame []byte) ([]byte, bool) {
	if w.Format == FormatJSON {
		return frame, true
	}
	e, err := parseEnvelope(frame)
	if err != nil {
		return nil, false
	}
	x, hasX, err := e.parseExtras()
	if err != nil {
		return nil, false
	}
	t := textWriter{js: w.Client != ClientFlutter, ok: true}
	t.b = make([]byte, 0, len(frame)+len(frame)/4+32)
	t.b = append(t.b, '{')
	if w.Format == FormatMsgpack {
		t.msgpackEnvelope(&e, x, hasX)
	} else {
		t.protoEnvelope(&e, x, hasX)
	}
	t.b = append(t.b, '}')
	return t.b, t.ok
}

// StripDeltaMarkers removes __delta_seq and __conflation_key from a client's text of a full
// frame the way sockudo-js and sockudo_flutter do (four regular-expression passes), giving
// the base they keep.
func StripDeltaMarkers(text []byte) []byte {
	for _, re := range markerREs {
		text = re.ReplaceAll(text, nil)
	}
	return text
}

var markerREs = [...]*regexp.Regexp{
	regexp.MustCompile(`,"__delta_seq":\d+`),
	regexp.MustCompile(`"__delta_seq":\d+,`),
	regexp.MustCompile(`,"__conflation_key":"[^"]*"`),
	regexp.MustCompile(`"__conflation_key":"[^"]*",`),
}

// textWriter writes one client's JSON text. js selects sockudo-js's rules, else
// sockudo_flutter's. ok turns false on anything it cannot predict.
type textWriter struct {
	b  []byte
	js bool
	ok bool
	n  int // members written in the top-level object
}

func (t *textWriter) key(k string) {
	if t.n > 0 {
		t.b = append(t.b, ',')
	}
	t.n++
	t.b = appendJSString(t.b, k)
	t.b = append(t.b, ':')
}

func (t *textWriter) str(k, v string, ok bool) {
	if ok {
		t.key(k)
		t.b = appendJSString(t.b, v)
	}
}

// serial writes a uint64 as a client normalises it: a number up to 2^53-1, a string above.
func (t *textWriter) serial(k string, v uint64, ok bool) {
	if !ok {
		return
	}
	t.key(k)
	t.b = appendSerial(t.b, v)
}

func appendSerial(b []byte, v uint64) []byte {
	if v <= maxSafeInteger {
		return strconv.AppendUint(b, v, 10)
	}
	b = append(b, '"')
	b = strconv.AppendUint(b, v, 10)
	return append(b, '"')
}

// msgpackEnvelope: both clients walk the 15 positions and keep the non-nil ones, in order.
func (t *textWriter) msgpackEnvelope(e *envelope, x wireExtras, hasX bool) {
	t.str("event", e.event, e.hasEvent)
	t.str("channel", e.channel, e.hasChannel)
	if e.data != nil {
		s, _ := e.wireData() // ["string", s] and ["json", text] both decode to the string
		t.str("data", s, true)
	}
	t.str("name", e.name, e.hasName)
	t.str("user_id", e.userID, e.hasUserID)
	if e.hasTags {
		t.key("tags")
		t.b = t.mpStringMap(t.b, e.tags)
	}
	t.str("message_id", e.messageID, e.hasMessageID)
	t.str("stream_id", e.streamID, e.hasStrID)
	if t.js {
		t.serial("serial", e.serial, e.hasSerial)
	} else if e.hasSerial {
		// sockudo_flutter keeps top-level integers as they are (no normalisation there).
		t.key("serial")
		t.flutterInt(e.serial)
	}
	if hasX {
		t.key("extras")
		t.mpExtras(x)
	}
	if t.js {
		t.serial("__delta_seq", e.deltaSeq, e.hasDeltaSeq)
	} else if e.hasDeltaSeq {
		t.key("__delta_seq")
		t.flutterInt(e.deltaSeq)
	}
	t.str("__conflation_key", e.conflationKey, e.hasConflationKey)
}

func (t *textWriter) flutterInt(v uint64) {
	if v > math.MaxInt64 {
		t.ok = false
	}
	t.b = strconv.AppendUint(t.b, v, 10)
}

// mpStringMap writes a decoded MessagePack map of strings: sockudo-js orders an object's
// array-index keys first; sockudo_flutter turns integer strings under keys containing
// "serial" into numbers.
func (t *textWriter) mpStringMap(b []byte, m []kv) []byte {
	b = append(b, '{')
	for i, j := range t.order(keysOf(m)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSString(b, m[j].k)
		b = append(b, ':')
		if !t.js && serialKey(m[j].k) {
			b = appendDartSerialString(b, m[j].v)
		} else {
			b = appendJSString(b, m[j].v)
		}
	}
	return append(b, '}')
}

// mpExtras writes the decoded extras map (headers, ephemeral, idempotency_key, echo, ai).
func (t *textWriter) mpExtras(x wireExtras) {
	o := objWriter{b: t.b}
	if len(x.headers) > 0 {
		o.key("headers")
		h := objWriter{b: o.b}
		hk := make([]string, len(x.headers))
		for i, v := range x.headers {
			hk[i] = v.k
		}
		for _, j := range t.order(hk) {
			v := x.headers[j]
			h.key(v.k)
			switch v.kind {
			case 'n':
				if t.js {
					h.b = t.appendJSNumber(h.b, v.n)
				} else {
					// ["number", f] goes through normalizeWireSerial: integral values become
					// integers (strings when unsafe), the rest stay doubles.
					h.b = t.appendDartTaggedNumber(h.b, v.n)
				}
			case 'b':
				h.b = strconv.AppendBool(h.b, v.b)
			default:
				if !t.js && serialKey(v.k) {
					h.b = appendDartSerialString(h.b, v.s)
				} else {
					h.b = appendJSString(h.b, v.s)
				}
			}
		}
		o.b = h.end()
	}
	t.commonExtras(&o, x, t.mpStringMap)
	t.b = o.end()
}

// commonExtras writes ephemeral, idempotency_key, echo and ai, which both formats and both
// clients render alike (but for the maps, written by m).
func (t *textWriter) commonExtras(o *objWriter, x wireExtras, m func([]byte, []kv) []byte) {
	if x.ephemeral != nil {
		o.key("ephemeral")
		o.b = strconv.AppendBool(o.b, *x.ephemeral)
	}
	if x.idempotencyKey != nil {
		o.key("idempotency_key")
		o.b = appendJSString(o.b, *x.idempotencyKey)
	}
	if x.echo != nil {
		o.key("echo")
		o.b = strconv.AppendBool(o.b, *x.echo)
	}
	if x.hasAI {
		o.key("ai")
		a := objWriter{b: o.b}
		if x.hasTransport {
			a.key("transport")
			a.b = m(a.b, x.aiTransport)
		}
		if x.hasCodec {
			a.key("codec")
			a.b = m(a.b, x.aiCodec)
		}
		o.b = a.end()
	}
}

// protoEnvelope: sockudo-js builds {event, channel, user_id, stream_id, serial, message_id,
// __delta_seq, __conflation_key, extras, data} (name and tags are dropped);
// sockudo_flutter {event, channel, user_id, message_id, stream_id, serial, __delta_seq,
// __conflation_key, data, extras}. Absent members are left out.
func (t *textWriter) protoEnvelope(e *envelope, x wireExtras, hasX bool) {
	t.str("event", e.event, e.hasEvent)
	t.str("channel", e.channel, e.hasChannel)
	t.str("user_id", e.userID, e.hasUserID)
	if t.js {
		t.str("stream_id", e.streamID, e.hasStrID)
		t.serial("serial", e.serial, e.hasSerial)
		t.str("message_id", e.messageID, e.hasMessageID)
	} else {
		t.str("message_id", e.messageID, e.hasMessageID)
		t.str("stream_id", e.streamID, e.hasStrID)
		t.serial("serial", e.serial, e.hasSerial)
	}
	t.serial("__delta_seq", e.deltaSeq, e.hasDeltaSeq)
	t.str("__conflation_key", e.conflationKey, e.hasConflationKey)
	if t.js && hasX {
		t.key("extras")
		t.protoExtras(x)
	}
	if e.data != nil {
		t.key("data")
		if s, isString := e.wireData(); isString {
			t.b = appendJSString(t.b, s)
		} else {
			t.b = t.appendParsedJSON(t.b, s)
		}
	}
	if !t.js && hasX {
		t.key("extras")
		t.protoExtras(x)
	}
}

// protoExtras writes extras decoded from protobuf: map keys arrive sorted (pushwire marshals
// deterministically); number headers are JavaScript numbers for sockudo-js and Dart doubles
// for sockudo_flutter.
func (t *textWriter) protoExtras(x wireExtras) {
	o := objWriter{b: t.b}
	if len(x.headers) > 0 {
		hs := slices.Clone(x.headers)
		slices.SortStableFunc(hs, func(a, b header) int { return strings.Compare(a.k, b.k) })
		hs = slices.CompactFunc(hs, func(a, b header) bool { return a.k == b.k })
		hk := make([]string, len(hs))
		for i, v := range hs {
			hk[i] = v.k
		}
		o.key("headers")
		h := objWriter{b: o.b}
		for _, j := range t.order(hk) {
			v := hs[j]
			h.key(v.k)
			switch v.kind {
			case 'n':
				if t.js {
					h.b = t.appendJSNumber(h.b, v.n)
				} else {
					h.b = t.appendDartDouble(h.b, v.n)
				}
			case 'b':
				h.b = strconv.AppendBool(h.b, v.b)
			default:
				h.b = appendJSString(h.b, v.s)
			}
		}
		o.b = h.end()
	}
	t.commonExtras(&o, x, func(b []byte, m []kv) []byte {
		s := slices.Clone(m)
		slices.SortStableFunc(s, func(a, b kv) int { return strings.Compare(a.k, b.k) })
		s = slices.CompactFunc(s, func(a, b kv) bool { return a.k == b.k })
		w := textWriter{js: t.js, ok: true}
		b = w.plainStringMap(b, s)
		return b
	})
	t.b = o.end()
}

// plainStringMap writes a string map without any serial normalisation (protobuf maps).
func (t *textWriter) plainStringMap(b []byte, m []kv) []byte {
	b = append(b, '{')
	for i, j := range t.order(keysOf(m)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSString(b, m[j].k)
		b = append(b, ':')
		b = appendJSString(b, m[j].v)
	}
	return append(b, '}')
}

// objWriter writes one nested object.
type objWriter struct {
	b []byte
	n int
}

func (o *objWriter) key(k string) {
	if o.n == 0 {
		o.b = append(o.b, '{')
	} else {
		o.b = append(o.b, ',')
	}
	o.n++
	o.b = appendJSString(o.b, k)
	o.b = append(o.b, ':')
}

func (o *objWriter) end() []byte {
	if o.n == 0 {
		return append(o.b, '{', '}')
	}
	return append(o.b, '}')
}

func keysOf(m []kv) []string {
	k := make([]string, len(m))
	for i, p := range m {
		k[i] = p.k
	}
	return k
}

// order returns the order in which a client writes an object's keys (given in insertion
// order), as indexes: JavaScript puts array-index keys first, ascending; Dart keeps
// insertion order.
func (t *textWriter) order(keys []string) []int {
	idx := make([]int, len(keys))
	for i := range idx {
		idx[i] = i
	}
	if !t.js {
		return idx
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		na, ia := arrayIndex(keys[a])
		nb, ib := arrayIndex(keys[b])
		switch {
		case ia && ib:
			return cmpUint(na, nb)
		case ia:
			return -1
		case ib:
			return 1
		}
		return 0
	})
	return idx
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// arrayIndex reports whether k is a JavaScript array index ("0", "1", … up to 2^32-2, no
// leading zeros).
func arrayIndex(k string) (uint64, bool) {
	if k == "" || len(k) > 10 || (len(k) > 1 && k[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseUint(k, 10, 64)
	if err != nil || n >= 1<<32-1 {
		return 0, false
	}
	return n, true
}

// serialKey: sockudo_flutter normalises map values whose key contains "serial".
func serialKey(k string) bool { return strings.Contains(strings.ToLower(k), "serial") }

var integerString = regexp.MustCompile(`^-?[0-9]+$`)

// appendDartSerialString writes a string map value under a "serial" key as sockudo_flutter
// keeps it: an integer string becomes an integer (a canonical decimal string when beyond
// 2^53-1), anything else stays the string.
func appendDartSerialString(b []byte, s string) []byte {
	tr := strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == '\uFEFF' })
	if !integerString.MatchString(tr) {
		return appendJSString(b, s)
	}
	n, _ := new(big.Int).SetString(tr, 10)
	return appendBigSerial(b, n)
}

var maxSafeBig, minSafeBig = big.NewInt(maxSafeInteger), big.NewInt(-maxSafeInteger)

func appendBigSerial(b []byte, n *big.Int) []byte {
	if n.Cmp(maxSafeBig) <= 0 && n.Cmp(minSafeBig) >= 0 {
		return n.Append(b, 10)
	}
	b = append(b, '"')
	b = n.Append(b, 10)
	return append(b, '"')
}

// appendJSNumber writes f as JSON.stringify does (Number::toString); infinities cannot be
// predicted (they become null) and turn ok off.
func (t *textWriter) appendJSNumber(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		t.ok = false
		return append(b, "null"...)
	}
	return appendJSNumber(b, f)
}

// appendDartDouble writes a double as Dart's jsonEncode does (double.toString: like
// JavaScript, but an integral value in fixed notation keeps ".0").
func (t *textWriter) appendDartDouble(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		t.ok = false
		return append(b, "null"...)
	}
	if f == 0 {
		if math.Signbit(f) {
			return append(b, "-0.0"...)
		}
		return append(b, "0.0"...)
	}
	b = appendJSNumber(b, f)
	if a := math.Abs(f); a == math.Trunc(a) && a < 1e21 {
		b = append(b, ".0"...)
	}
	return b
}

// appendDartTaggedNumber writes a MessagePack ["number", f] header as sockudo_flutter keeps
// it: normalizeWireSerial makes an integral double an int (a string beyond 2^53-1).
func (t *textWriter) appendDartTaggedNumber(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		t.ok = false
		return append(b, "null"...)
	}
	if f != math.Trunc(f) {
		return t.appendDartDouble(b, f)
	}
	if math.Abs(f) >= 1<<63 {
		t.ok = false // Dart's toInt() saturates there
	}
	n, _ := big.NewFloat(f).Int(nil)
	return appendBigSerial(b, n)
}

// appendJSNumber is ECMAScript's Number::toString for a finite f.
func appendJSNumber(b []byte, f float64) []byte {
	if f == 0 {
		return append(b, '0')
	}
	if f < 0 {
		b = append(b, '-')
		f = -f
	}
	// Shortest round-trip digits and exponent: d.ddde±x.
	s := strconv.FormatFloat(f, 'e', -1, 64)
	mant, exp, _ := strings.Cut(s, "e")
	digits := strings.Replace(mant, ".", "", 1)
	e, _ := strconv.Atoi(exp)
	k, n := len(digits), e+1
	switch {
	case k <= n && n <= 21:
		b = append(b, digits...)
		for i := 0; i < n-k; i++ {
			b = append(b, '0')
		}
	case 0 < n && n <= 21:
		b = append(b, digits[:n]...)
		b = append(b, '.')
		b = append(b, digits[n:]...)
	case -6 < n && n <= 0:
		b = append(b, "0."...)
		for i := 0; i < -n; i++ {
			b = append(b, '0')
		}
		b = append(b, digits...)
	default:
		b = append(b, digits[0])
		if k > 1 {
			b = append(b, '.')
			b = append(b, digits[1:]...)
		}
		b = append(b, 'e')
		if n-1 >= 0 {
			b = append(b, '+')
		}
		b = strconv.AppendInt(b, int64(n-1), 10)
	}
	return b
}

// appendJSString writes s as a JSON string the way JSON.stringify (and Dart's jsonEncode,
// which escapes alike) does: ", \ and control characters escaped (\b \t \n \f \r, else
// \u00xx), everything else as is. s is valid UTF-8 here.
func appendJSString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\f':
			b = append(b, '\\', 'f')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Protobuf json_value data: both clients first rewrite integer literals of keys containing
// "serial" that are beyond 2^53-1 into strings (preserveUnsafeJsonSerials), then parse the
// text (keeping the original text as a string when that fails) and serialise it again.
var unsafeSerialRE = regexp.MustCompile(`("[-_A-Za-z0-9]*serial[-_A-Za-z0-9]*"\s*:\s*)(-?\d+)`)

func (t *textWriter) appendParsedJSON(b []byte, text string) []byte {
	if strings.Contains(text, `\ud`) || strings.Contains(text, `\uD`) {
		t.ok = false // surrogate escapes: Go decodes lone ones differently
	}
	src := text
	if strings.Contains(text, "serial") {
		src = unsafeSerialRE.ReplaceAllStringFunc(text, func(m string) string {
			sub := unsafeSerialRE.FindStringSubmatch(m)
			n, _ := new(big.Int).SetString(sub[2], 10)
			if n.Cmp(maxSafeBig) <= 0 && n.Cmp(minSafeBig) >= 0 {
				return m
			}
			if t.js {
				return sub[1] + strconv.Quote(sub[2]) // JSON.stringify of the literal
			}
			return sub[1] + `"` + n.String() + `"` // jsonEncode of BigInt.toString()
		})
	}
	if !json.Valid([]byte(src)) {
		return appendJSString(b, text)
	}
	p := jsonParser{s: src}
	v := p.value()
	return t.appendValue(b, v)
}

// jnode is a parsed JSON value with object members in source order.
type jnode struct {
	kind byte // 'o' object, 'a' array, 's' string, 'n' number, 't' true, 'f' false, 'z' null
	lit  string
	keys []string
	vals []*jnode
}

// jsonParser parses valid JSON (checked before) keeping member order and number literals.
type jsonParser struct {
	s string
	i int
}

func (p *jsonParser) ws() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *jsonParser) value() *jnode {
	p.ws()
	switch c := p.s[p.i]; c {
	case '{':
		n := &jnode{kind: 'o'}
		p.i++
		p.ws()
		if p.s[p.i] == '}' {
			p.i++
			return n
		}
		for {
			p.ws()
			k := p.value().lit
			p.ws()
			p.i++ // ':'
			v := p.value()
			if j := slices.Index(n.keys, k); j >= 0 {
				n.vals[j] = v // the last value wins, at the first one's place
			} else {
				n.keys, n.vals = append(n.keys, k), append(n.vals, v)
			}
			p.ws()
			if p.s[p.i] == ',' {
				p.i++
				continue
			}
			p.i++ // '}'
			return n
		}
	case '[':
		n := &jnode{kind: 'a'}
		p.i++
		p.ws()
		if p.s[p.i] == ']' {
			p.i++
			return n
		}
		for {
			n.vals = append(n.vals, p.value())
			p.ws()
			if p.s[p.i] == ',' {
				p.i++
				continue
			}
			p.i++ // ']'
			return n
		}
	case '"':
		start := p.i
		p.i++
		for p.s[p.i] != '"' {
			if p.s[p.i] == '\\' {
				p.i++
			}
			p.i++
		}
		p.i++
		var s string
		_ = json.Unmarshal([]byte(p.s[start:p.i]), &s)
		return &jnode{kind: 's', lit: s}
	case 't':
		p.i += 4
		return &jnode{kind: 't'}
	case 'f':
		p.i += 5
		return &jnode{kind: 'f'}
	case 'n':
		p.i += 4
		return &jnode{kind: 'z'}
	default:
		start := p.i
		for p.i < len(p.s) && strings.IndexByte("+-0123456789.eE", p.s[p.i]) >= 0 {
			p.i++
		}
		return &jnode{kind: 'n', lit: p.s[start:p.i]}
	}
}

// appendValue writes a parsed value as the client re-serialises it.
func (t *textWriter) appendValue(b []byte, v *jnode) []byte {
	switch v.kind {
	case 'o':
		b = append(b, '{')
		for i, j := range t.order(v.keys) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSString(b, v.keys[j])
			b = append(b, ':')
			b = t.appendValue(b, v.vals[j])
		}
		return append(b, '}')
	case 'a':
		b = append(b, '[')
		for i, e := range v.vals {
			if i > 0 {
				b = append(b, ',')
			}
			b = t.appendValue(b, e)
		}
		return append(b, ']')
	case 's':
		return appendJSString(b, v.lit)
	case 't':
		return append(b, "true"...)
	case 'f':
		return append(b, "false"...)
	case 'z':
		return append(b, "null"...)
	}
	// A number: JavaScript parses every literal as a double; Dart parses an integer literal
	// that fits 64 bits as an int and everything else as a double.
	if !t.js && !strings.ContainsAny(v.lit, ".eE") {
		if v.lit == "-0" {
			t.ok = false
		}
		if n, err := strconv.ParseInt(v.lit, 10, 64); err == nil {
			return strconv.AppendInt(b, n, 10)
		}
	}
	f, err := strconv.ParseFloat(v.lit, 64)
	if err != nil && !math.IsInf(f, 0) {
		t.ok = false
	}
	if t.js {
		return t.appendJSNumber(b, f)
	}
	return t.appendDartDouble(b, f)
}
