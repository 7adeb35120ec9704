// Package deltatest generates deterministic corpora of realistic JSON frame streams for
// testing and benchmarking the delta codecs: price ticks, order status timelines, chat edits
// and random edits. Every stream is a sequence of complete V2 frames (the bytes a server
// would send), so consecutive frames are the (base, target) pairs the codecs see in
// production. The same seed always gives the same bytes.
package deltatest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Stream is a named sequence of frames; Frames[i] is the delta base of Frames[i+1].
type Stream struct {
	Name   string
	Frames [][]byte
}

// Pair is one (base, target) pair taken from a stream.
type Pair struct {
	Name         string
	Base, Target []byte
}

// Corpus returns the four streams with n frames each, generated from seed.
func Corpus(seed uint64, n int) []Stream {
	return []Stream{
		{Name: "price-ticks", Frames: PriceTicks(seed, n)},
		{Name: "order-timeline", Frames: OrderTimeline(seed+1, n)},
		{Name: "chat-edits", Frames: ChatEdits(seed+2, n)},
		{Name: "random-edits", Frames: RandomEdits(seed+3, n)},
	}
}

// Pairs returns the consecutive (base, target) pairs of every stream.
func Pairs(streams []Stream) []Pair {
	var out []Pair
	for _, s := range streams {
		for i := 1; i < len(s.Frames); i++ {
			out = append(out, Pair{Name: fmt.Sprintf("%s/%04d", s.Name, i), Base: s.Frames[i-1], Target: s.Frames[i]})
		}
	}
	return out
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }

// uuid returns a random version-4 UUID drawn from r, like a server's message_id.
func uuid(r *rand.Rand) string {
	const hex = "0123456789abcdef"
	var b [36]byte
	for i := range b {
		switch i {
		case 8, 13, 18, 23:
			b[i] = '-'
		case 14:
			b[i] = '4'
		case 19:
			b[i] = hex[8+r.IntN(4)]
		default:
			b[i] = hex[r.IntN(16)]
		}
	}
	return string(b[:])
}

// quote returns s as a JSON string literal.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// envelope builds a V2 frame the way the server serializes one: event, channel, data,
// message_id, stream_id, serial.
func envelope(event, channel, data, messageID, streamID string, serial int) []byte {
	var b strings.Builder
	b.WriteString(`{"event":`)
	b.WriteString(quote(event))
	b.WriteString(`,"channel":`)
	b.WriteString(quote(channel))
	b.WriteString(`,"data":`)
	b.WriteString(data)
	b.WriteString(`,"message_id":`)
	b.WriteString(quote(messageID))
	b.WriteString(`,"stream_id":`)
	b.WriteString(quote(streamID))
	b.WriteString(`,"serial":`)
	b.WriteString(strconv.Itoa(serial))
	b.WriteByte('}')
	return []byte(b.String())
}

func fixed(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }

// PriceTicks returns n frames of a market-data ticker for one symbol: bid/ask random walk,
// sizes, last trade, 24 h statistics, sequence and timestamp, with the payload as a JSON
// string in "data" (as the HTTP API delivers it) and a fresh message_id per frame.
func PriceTicks(seed uint64, n int) [][]byte {
	r := newRand(seed)
	streamID := uuid(r)
	mid := 67210.50
	open := mid * 0.985
	high, low := mid*1.004, mid*0.98
	vol := 18234.1182
	seq := 48_120_000 + r.IntN(1000)
	ts := int64(1_700_000_000_000)
	bidSize, askSize := 0.5123, 1.2044
	last, lastSize := mid, 0.01
	frames := make([][]byte, 0, n)
	for i := range n {
		mid += (r.Float64() - 0.5) * 6
		spread := 0.01 + float64(r.IntN(80))/100
		bid, ask := mid-spread/2, mid+spread/2
		if r.IntN(2) == 0 {
			bidSize = float64(r.IntN(50000)) / 10000
		}
		if r.IntN(2) == 0 {
			askSize = float64(r.IntN(50000)) / 10000
		}
		if r.IntN(3) == 0 {
			last, lastSize = mid+(r.Float64()-0.5)*spread, float64(1+r.IntN(20000))/10000
			vol += lastSize
		}
		high, low = max(high, ask), min(low, bid)
		seq += 1 + r.IntN(3)
		ts += int64(50 + r.IntN(1200))
		payload := `{"symbol":"BTC","pair":"BTC-USD","exchange":"coinbase",` +
			`"bid":` + fixed(bid, 2) + `,"ask":` + fixed(ask, 2) +
			`,"bid_size":` + fixed(bidSize, 4) + `,"ask_size":` + fixed(askSize, 4) +
			`,"last":` + fixed(last, 2) + `,"last_size":` + fixed(lastSize, 4) +
			`,"open_24h":` + fixed(open, 2) + `,"high_24h":` + fixed(high, 2) + `,"low_24h":` + fixed(low, 2) +
			`,"volume_24h":` + fixed(vol, 4) + `,"change_24h":` + fixed((last-open)/open*100, 2) +
			`,"status":"open","seq":` + strconv.Itoa(seq) + `,"ts":` + strconv.FormatInt(ts, 10) + `}`
		frames = append(frames, envelope("price", "ticker:BTC", quote(payload), uuid(r), streamID, i+1))
	}
	return frames
}

// PriceTicksMinimal returns n frames of the smallest price tick shape,
// {"event":"price","channel":"ticker:BTC","data":"{\"symbol\":\"BTC\",\"bid\":…,\"ask\":…,\"ts\":…}"},
// without V2 identifiers.
func PriceTicksMinimal(seed uint64, n int) [][]byte {
	r := newRand(seed)
	mid := 67210.50
	ts := int64(1_700_000_000_000)
	frames := make([][]byte, 0, n)
	for range n {
		mid += (r.Float64() - 0.5) * 6
		spread := 0.01 + float64(r.IntN(80))/100
		ts += int64(50 + r.IntN(1200))
		payload := `{"symbol":"BTC","bid":` + fixed(mid-spread/2, 2) + `,"ask":` + fixed(mid+spread/2, 2) +
			`,"ts":` + strconv.FormatInt(ts, 10) + `}`
		frames = append(frames, []byte(`{"event":"price","channel":"ticker:BTC","data":`+quote(payload)+`}`))
	}
	return frames
}

var orderStatuses = []string{"pending_new", "new", "partially_filled", "partially_filled", "partially_filled", "filled"}

// OrderTimeline returns n frames of order status updates on a private channel: each order
// moves through its statuses, fills accumulate, and the payload (a JSON object) carries the
// growing list of fills, so later frames copy long stretches of earlier ones.
func OrderTimeline(seed uint64, n int) [][]byte {
	r := newRand(seed)
	streamID := uuid(r)
	frames := make([][]byte, 0, n)
	ts := int64(1_700_000_000_000)
	var orderID string
	var qty, filled float64
	var price float64
	var step int
	var fills []string
	for i := range n {
		if orderID == "" || step >= len(orderStatuses) || r.IntN(12) == 0 {
			orderID = fmt.Sprintf("ord_%08x%08x", r.Uint32(), r.Uint32())
			qty = float64(1+r.IntN(400)) / 100
			price = 3000 + float64(r.IntN(200000))/100
			filled, step, fills = 0, 0, nil
		}
		status := orderStatuses[step]
		if r.IntN(30) == 0 {
			status = "cancelled"
			step = len(orderStatuses)
		} else {
			step++
		}
		if strings.HasPrefix(status, "partially") || status == "filled" {
			f := qty - filled
			if status != "filled" {
				f = float64(int(f*100*r.Float64())) / 100
			}
			filled += f
			fills = append(fills, fmt.Sprintf(`{"fill_id":"f_%06d","qty":%s,"price":%s,"liquidity":"%s","ts":%d}`,
				r.IntN(1000000), fixed(f, 2), fixed(price+float64(r.IntN(100))/100, 2),
				[]string{"maker", "taker"}[r.IntN(2)], ts))
		}
		ts += int64(20 + r.IntN(5000))
		data := fmt.Sprintf(`{"order_id":"%s","client_order_id":"web-%d","account":"acc_7f3a","side":"buy","type":"limit","symbol":"ETH-USD",`+
			`"status":"%s","qty":%s,"filled_qty":%s,"remaining_qty":%s,"limit_price":%s,"time_in_force":"GTC",`+
			`"updated_at":%d,"fills":[%s]}`,
			orderID, 1000+i/7, status, fixed(qty, 2), fixed(filled, 2), fixed(qty-filled, 2), fixed(price, 2),
			ts, strings.Join(fills, ","))
		frames = append(frames, envelope("order.updated", "private-orders-42", data, uuid(r), streamID, i+1))
	}
	return frames
}

var chatWords = []string{
	"hello", "world", "the", "deploy", "is", "green", "again", "👍", "ship", "it", "café", "naïve",
	"日本語", "テスト", "🚀", "Привет", "mañana", "review", "please", "LGTM", "ok", "done", "😀", "∑",
	"merge", "conflict", "rebase", "🙈", "straße", "français", "ελληνικά", "中文", "ok?", "—", "…",
}

// ChatEdits returns n frames of a chat message being edited: words inserted, deleted and
// replaced in a Unicode text (emoji, CJK, Cyrillic, accents), with an edit counter.
func ChatEdits(seed uint64, n int) [][]byte {
	r := newRand(seed)
	streamID := uuid(r)
	frames := make([][]byte, 0, n)
	words := []string{"hey", "team", "—", "the", "release", "🚀", "goes", "out", "at", "5pm"}
	msgID := fmt.Sprintf("msg_%010d", r.IntN(1e9))
	for i := range n {
		if i%40 == 0 && i > 0 {
			words = words[:2+r.IntN(6)]
			msgID = fmt.Sprintf("msg_%010d", r.IntN(1e9))
		}
		for range 1 + r.IntN(2) {
			w := chatWords[r.IntN(len(chatWords))]
			switch k := r.IntN(len(words) + 1); r.IntN(3) {
			case 0:
				words = append(words[:k], append([]string{w}, words[k:]...)...)
			case 1:
				if len(words) > 3 && k < len(words) {
					words = append(words[:k], words[k+1:]...)
				}
			default:
				if k < len(words) {
					words[k] = w
				}
			}
		}
		if len(words) > 120 {
			words = words[len(words)-100:]
		}
		data := fmt.Sprintf(`{"id":"%s","user":{"id":"u_19","name":"Zoë Ångström"},"text":%s,"edits":%d,"edited_at":"2024-05-01T12:%02d:%02dZ","reactions":{"👍":%d}}`,
			msgID, quote(strings.Join(words, " ")), i%40, (i/60)%60, i%60, r.IntN(5))
		frames = append(frames, envelope("message.updated", "presence-room-7", data, uuid(r), streamID, i+1))
	}
	return frames
}

// RandomEdits returns n frames of a JSON document mutated by random byte-level edits:
// inserts, deletes, replacements and block moves of random lengths, including bytes outside
// ASCII, so the codecs see frames that share arbitrary fragments.
func RandomEdits(seed uint64, n int) [][]byte {
	r := newRand(seed)
	doc := make([]byte, 0, 4096)
	doc = append(doc, `{"doc":"`...)
	for range 300 + r.IntN(700) {
		doc = append(doc, byte(32+r.IntN(95)))
	}
	doc = append(doc, `"}`...)
	frames := make([][]byte, 0, n)
	for range n {
		next := append([]byte(nil), doc...)
		for range 1 + r.IntN(6) {
			p := r.IntN(len(next) + 1)
			l := 1 + r.IntN(40)
			switch r.IntN(4) {
			case 0: // insert
				ins := make([]byte, l)
				for j := range ins {
					ins[j] = byte(r.IntN(256))
				}
				next = append(next[:p], append(ins, next[p:]...)...)
			case 1: // delete
				next = append(next[:p], next[min(p+l, len(next)):]...)
			case 2: // replace
				for j := p; j < min(p+l, len(next)); j++ {
					next[j] = byte(32 + r.IntN(95))
				}
			default: // move a block to the end
				e := min(p+l, len(next))
				blk := append([]byte(nil), next[p:e]...)
				next = append(append(next[:p], next[e:]...), blk...)
			}
		}
		if len(next) > 8192 {
			next = next[:4096]
		}
		frames = append(frames, next)
		doc = next
	}
	return frames
}

// LargePair returns a random base of baseLen bytes and a target of targetLen bytes made of
// blocks of that base (100 to 4,000 bytes from random offsets), each followed by a short
// edit: a pair whose delta is small however long the target, for multi-window tests.
func LargePair(seed uint64, baseLen, targetLen int) (base, target []byte) {
	r := newRand(seed)
	base = make([]byte, baseLen)
	for i := range base {
		base[i] = byte(r.Uint32())
	}
	target = make([]byte, 0, targetLen+4100)
	for len(target) < targetLen {
		n := min(100+r.IntN(3901), baseLen)
		p := r.IntN(baseLen - n + 1)
		target = append(target, base[p:p+n]...)
		target = append(target, "edit:"...)
		target = strconv.AppendInt(target, int64(len(target)), 10)
	}
	return base, target[:targetLen]
}
