package load

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pushwire/pushwire/delta"
	"github.com/pushwire/pushwire/protocol"
)

// Delta streams (--mode delta).
const (
	StreamTicks = "ticks" // ~200-byte price ticks whose price fields move a little each time
	StreamChat  = "chat"  // chat lines that share little with each other: deltas should not pay
)

// DeltaReport is the result of a --mode delta run: what two V2 subscribers of one channel
// received for the same published stream, one with delta compression on and one without.
type DeltaReport struct {
	Label     string `json:"label"`
	Stream    string `json:"stream"`
	Format    string `json:"format"`
	Algorithm string `json:"algorithm"`
	Messages  int    `json:"messages"`
	Channel   string `json:"channel"`

	// Bytes of the message frames each subscriber received: payload, and payload plus
	// WebSocket frame headers.
	PlainBytes     int64   `json:"plain_bytes"`
	PlainWireBytes int64   `json:"plain_wire_bytes"`
	DeltaBytes     int64   `json:"delta_bytes"`
	DeltaWireBytes int64   `json:"delta_wire_bytes"`
	SavedPct       float64 `json:"saved_pct"`

	DeltaFrames int `json:"delta_frames"`
	FullFrames  int `json:"full_frames"`
	// Verified counts the messages whose text, rebuilt the way sockudo-js rebuilds it, is
	// byte for byte what the server defines for it: the frame the plain subscriber received
	// (its client text for binary formats) for full frames, and for deltas either that text
	// (servers before the lean target) or its lean target (protocol.DeltaTarget).
	Verified int `json:"verified"`
	// LeanTargets counts the deltas that rebuilt the lean target, not the whole frame.
	LeanTargets int `json:"lean_targets"`
	// SameData counts the messages from which the clients surface the data they surface from
	// the plain subscriber's frame (protocol.ClientData; always so for full frames).
	SameData int `json:"same_data"`

	// The same frames compressed as permessage-deflate would compress them (raw DEFLATE,
	// sync flush, trailing 00 00 ff ff removed): each message on its own (no context
	// takeover, what pushwire negotiates) and with the window kept across messages.
	DeflatePlain       int64   `json:"deflate_plain"`
	DeflateDelta       int64   `json:"deflate_delta"`
	DeflateCtxPlain    int64   `json:"deflate_ctx_plain"`
	DeflateCtxDelta    int64   `json:"deflate_ctx_delta"`
	SavedDeflatePct    float64 `json:"saved_deflate_pct"`     // delta+deflate vs deflate
	SavedDeflateCtxPct float64 `json:"saved_deflate_ctx_pct"` // delta+deflate(ctx) vs deflate(ctx)

	// FloorWireBytes is what the delta subscriber would have received (payload plus
	// headers) had every delta been only the characters its rebuilt text does not share
	// with its base (length minus their longest common subsequence), with no codec overhead,
	// in the same envelope: a bound no delta format can beat.
	FloorWireBytes int64   `json:"floor_wire_bytes"`
	FloorSavedPct  float64 `json:"floor_saved_pct"`

	AvgPlainFrame float64 `json:"avg_plain_frame"`
	AvgDeltaFrame float64 `json:"avg_delta_frame"` // sockudo:delta frames only
}

// TickPayload is the i-th price tick of a stream drawn from r: the issue-19 shape,
// {"symbol","price","bid","ask","volume_24h","change_24h_pct","exchange","ts"}, ~200 bytes.
type tickGen struct {
	r     *rand.Rand
	price float64
	vol   float64
	open  float64
	ts    int64
}

func newTickGen(seed uint64) *tickGen {
	return &tickGen{r: rand.New(rand.NewPCG(seed, 0x5eed)), price: 67012.25, vol: 18234.118, open: 66120.5, ts: 1_765_000_000_000}
}

func (g *tickGen) next() string {
	g.price += float64(g.r.IntN(401)-200) / 100
	spread := float64(1+g.r.IntN(20)) / 100
	g.vol += float64(g.r.IntN(5000)) / 10000
	g.ts += int64(100 + g.r.IntN(900))
	f := func(v float64, p int) string { return strconv.FormatFloat(v, 'f', p, 64) }
	return `{"symbol":"BTC-USD","price":"` + f(g.price, 2) + `","bid":"` + f(g.price-spread/2, 2) +
		`","ask":"` + f(g.price+spread/2, 2) + `","volume_24h":"` + f(g.vol, 4) +
		`","change_24h_pct":"` + f((g.price-g.open)/g.open*100, 3) + `","exchange":"coinbase","ts":` +
		strconv.FormatInt(g.ts, 10) + `}`
}

var chatWords = strings.Fields("the a we you they ok sure lunch meeting deploy build review ship tomorrow today later great thanks please check this that issue bug fixed merged release staging prod coffee weekend call notes doc design test flaky green red")

func chatLine(r *rand.Rand, i int) string {
	n := 6 + r.IntN(20)
	words := make([]string, n)
	for k := range words {
		words[k] = chatWords[r.IntN(len(chatWords))]
	}
	user := "user_" + strconv.Itoa(r.IntN(50))
	b, _ := json.Marshal(map[string]any{"id": "m_" + strconv.FormatUint(r.Uint64(), 36), "user": user, "text": strings.Join(words, " "), "sent_at": 1_765_000_000_000 + int64(i)*1733 + int64(r.IntN(999))})
	return string(b)
}

// deltaSub is one V2 test subscriber: its connection and what it received.
type deltaSub struct {
	cfg    *Config // its format
	c      *wsConn
	frames [][]byte // message frames (not protocol frames), in order
}

func (cfg *Config) deltaURL() string {
	base := strings.TrimRight(cfg.URL, "/")
	return base + "/app/" + cfg.Key + "?protocol=2&client=js&version=1.0&format=" + cfg.Format + "&echo_messages=false"
}

func (cfg *Config) wire() protocol.Wire {
	f, _ := protocol.ParseFormat(cfg.Format)
	return protocol.Wire{Format: f, Client: protocol.ClientJS}
}

// encodeOut turns a JSON frame into the subscriber's format.
func (cfg *Config) encodeOut(frame []byte) []byte {
	w := cfg.wire()
	if !w.Binary() {
		return frame
	}
	return protocol.MustEncode(w.Form(), frame)
}

// decodeIn reads a received frame of the subscriber's format: event, channel and data.
func (cfg *Config) decodeIn(msg []byte) (protocol.Frame, error) {
	w := cfg.wire()
	if !w.Binary() {
		f, err := protocol.ParseFrame(msg)
		if err != nil {
			return f, err
		}
		return f, nil
	}
	f, err := protocol.DecodeBinary(w.Form(), msg)
	if err != nil {
		return f, err
	}
	return f, nil
}

func dialDeltaSub(ctx context.Context, cfg *Config, channel string, enable bool) (*deltaSub, error) {
	c, err := dialWS(ctx, cfg.deltaURL(), 1<<16)
	if err != nil {
		return nil, err
	}
	s := &deltaSub{cfg: cfg, c: c}
	// connection_established
	if _, _, err := c.ReadMessage(); err != nil {
		c.nc.Close()
		return nil, err
	}
	if enable {
		if err := c.writeFrame(cfg.opOut(), cfg.encodeOut([]byte(`{"event":"sockudo:enable_delta_compression","data":{"algorithms":["`+cfg.DeltaAlgorithm+`"]}}`))); err != nil {
			return nil, err
		}
		if err := s.await(cfg, "sockudo:delta_compression_enabled"); err != nil {
			return nil, err
		}
	}
	if err := c.writeFrame(cfg.opOut(), cfg.encodeOut([]byte(`{"event":"sockudo:subscribe","data":{"channel":"`+channel+`"}}`))); err != nil {
		return nil, err
	}
	return s, s.await(cfg, "sockudo_internal:subscription_succeeded")
}

func (cfg *Config) opOut() byte {
	if cfg.wire().Binary() {
		return opBinary
	}
	return opText
}

// await reads protocol frames until one named event arrives.
func (s *deltaSub) await(_ *Config, event string) error {
	cfg := s.cfg
	_ = s.c.nc.SetReadDeadline(time.Now().Add(cfg.Timeout))
	defer s.c.nc.SetReadDeadline(time.Time{})
	for {
		_, msg, err := s.c.ReadMessage()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", event, err)
		}
		f, err := cfg.decodeIn(msg)
		if err != nil {
			return err
		}
		if f.Event == event {
			return nil
		}
		if strings.HasSuffix(f.Event, ":error") || strings.HasSuffix(f.Event, "subscription_error") {
			return fmt.Errorf("waiting for %s: %s %s", event, f.Event, f.Data)
		}
	}
}

// readN reads n message frames (skipping protocol frames) within the timeout.
func (s *deltaSub) readN(_ *Config, n int) error {
	cfg := s.cfg
	_ = s.c.nc.SetReadDeadline(time.Now().Add(cfg.Timeout))
	defer s.c.nc.SetReadDeadline(time.Time{})
	for len(s.frames) < n {
		_, msg, err := s.c.ReadMessage()
		if err != nil {
			return fmt.Errorf("after %d of %d messages: %w", len(s.frames), n, err)
		}
		f, err := cfg.decodeIn(msg)
		if err != nil {
			return err
		}
		if strings.HasPrefix(f.Event, "sockudo:") && f.Event != "sockudo:delta" || strings.HasPrefix(f.Event, "sockudo_internal:") || strings.HasPrefix(f.Event, "pusher") {
			continue
		}
		s.frames = append(s.frames, bytes.Clone(msg))
	}
	return nil
}

// wsHeader is the size of a server-to-client WebSocket frame header for n payload bytes.
func wsHeader(n int) int64 {
	switch {
	case n < 126:
		return 2
	case n < 1<<16:
		return 4
	}
	return 10
}

var deltaMarkerRE = regexp.MustCompile(`,"__delta_seq":\d+|"__delta_seq":\d+,|,"__conflation_key":"[^"]*"|"__conflation_key":"[^"]*",`)

// RunDelta publishes cfg.Messages events of cfg.Stream to one channel with two V2
// subscribers, one with delta compression, and compares what they received. Every delta
// subscriber frame is rebuilt the way sockudo-js rebuilds it and checked against the plain
// subscriber's frame.
func RunDelta(ctx context.Context, cfg *Config, progress func(string)) (*DeltaReport, error) {
	channel := fmt.Sprintf("%s-%s-%d", cfg.Prefix, cfg.Stream, time.Now().UnixNano()%1e9)
	dctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	withDelta, err := dialDeltaSub(dctx, cfg, channel, true)
	if err != nil {
		return nil, fmt.Errorf("delta subscriber: %w", err)
	}
	defer withDelta.c.nc.Close()
	plain, err := dialDeltaSub(dctx, cfg, channel, false)
	if err != nil {
		return nil, fmt.Errorf("plain subscriber: %w", err)
	}
	defer plain.c.nc.Close()
	var jsonPlain *deltaSub // with a binary format: a JSON subscriber, for the client text
	if cfg.wire().Binary() {
		j := *cfg
		j.Format = "json"
		if jsonPlain, err = dialDeltaSub(dctx, &j, channel, false); err != nil {
			return nil, fmt.Errorf("json subscriber: %w", err)
		}
		defer jsonPlain.c.nc.Close()
	}
	subs := []*deltaSub{withDelta, plain}
	if jsonPlain != nil {
		subs = append(subs, jsonPlain)
	}
	ticks := newTickGen(42)
	chat := rand.New(rand.NewPCG(42, 7))
	client := &http.Client{Timeout: cfg.Timeout}
	publish := func(i int) error {
		var data, event string
		if cfg.Stream == StreamTicks {
			data, event = ticks.next(), "tick"
		} else {
			data, event = chatLine(chat, i), "message"
		}
		req, err := SignedEventRequest(ctx, cfg.HTTPURL, cfg.AppID, cfg.Key, cfg.Secret, channel, event, data, time.Now())
		if err != nil {
			return err
		}
		if cfg.RandomIDs {
			body, _ := json.Marshal(map[string]string{"name": event, "channel": channel, "data": data, "message_id": protocol.NewUUID()})
			path := "/apps/" + cfg.AppID + "/events"
			q := protocol.SignAPIRequest(cfg.Key, cfg.Secret, http.MethodPost, path, nil, body, time.Now())
			if req, err = http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(cfg.HTTPURL, "/")+path+"?"+q, bytes.NewReader(body)); err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("publish %d: HTTP %d", i, resp.StatusCode)
		}
		return nil
	}
	// A first message, not counted, received by every subscriber before the stream starts:
	// a new V2 subscription to a history channel holds its first live messages back (up to
	// 150 ms, for a resume) and sends them as full frames, which is not the steady state
	// measured here.
	if err := publish(-1); err != nil {
		return nil, err
	}
	for _, s := range subs {
		if err := s.readN(cfg, 1); err != nil {
			return nil, fmt.Errorf("first message: %w", err)
		}
	}
	progress(fmt.Sprintf("publishing %d %s events to %s", cfg.Messages, cfg.Stream, channel))
	for i := range cfg.Messages {
		if err := publish(i); err != nil {
			return nil, err
		}
	}
	var base []byte
	for k, s := range subs {
		if err := s.readN(cfg, cfg.Messages+1); err != nil {
			return nil, err
		}
		if k == 0 {
			// The delta subscriber's base after the first message: its text, markers stripped.
			if jsonPlain == nil {
				base = deltaMarkerRE.ReplaceAll(bytes.Clone(s.frames[0]), nil)
			} else {
				text, ok := protocol.ClientText(cfg.wire(), jsonPlain.frames[0])
				if !ok {
					return nil, errors.New("first message: no client text")
				}
				base = text
			}
		}
		s.frames = s.frames[1:]
	}
	rep := &DeltaReport{Label: cfg.Label, Stream: cfg.Stream, Format: cfg.Format, Algorithm: cfg.DeltaAlgorithm, Messages: cfg.Messages, Channel: channel}
	var deltaFrameBytes int64
	w := cfg.wire()
	for i := range cfg.Messages {
		p, d := plain.frames[i], withDelta.frames[i]
		rep.PlainBytes += int64(len(p))
		rep.PlainWireBytes += int64(len(p)) + wsHeader(len(p))
		rep.DeltaBytes += int64(len(d))
		rep.DeltaWireBytes += int64(len(d)) + wsHeader(len(d))
		// The text the client must end up with for message i.
		want := p
		if jsonPlain != nil {
			text, ok := protocol.ClientText(w, jsonPlain.frames[i])
			if !ok {
				return nil, fmt.Errorf("message %d: no client text", i)
			}
			want = text
		}
		f, err := cfg.decodeIn(d)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		if f.Event != "sockudo:delta" {
			rep.FullFrames++
			if jsonPlain == nil {
				base = deltaMarkerRE.ReplaceAll(bytes.Clone(d), nil)
			} else {
				base = want // a binary full frame's client text, markers stripped
			}
			if bytes.Equal(base, want) {
				rep.Verified++
				rep.SameData++
			}
			rep.FloorWireBytes += int64(len(d)) + wsHeader(len(d))
			continue
		}
		rep.DeltaFrames++
		deltaFrameBytes += int64(len(d))
		var dd struct {
			Event     string `json:"event"`
			Delta     string `json:"delta"`
			Seq       *int64 `json:"seq"`
			Algorithm string `json:"algorithm"`
		}
		if err := json.Unmarshal(f.Data, &dd); err != nil {
			return nil, fmt.Errorf("message %d: delta data: %w", i, err)
		}
		if dd.Seq == nil || dd.Event == "" {
			return nil, fmt.Errorf("message %d: delta frame without event or seq: %s", i, f.Data)
		}
		alg := dd.Algorithm
		if alg == "" {
			alg = cfg.DeltaAlgorithm
		}
		raw, err := base64.StdEncoding.DecodeString(dd.Delta)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		if base == nil {
			return nil, fmt.Errorf("message %d: a delta before any full frame", i)
		}
		out, err := delta.Apply(alg, base, raw)
		if err != nil {
			return nil, fmt.Errorf("message %d: apply: %w", i, err)
		}
		lean, leanOK := protocol.DeltaTarget(want)
		switch {
		case bytes.Equal(out, want):
		case leanOK && bytes.Equal(out, lean):
			rep.LeanTargets++
		default:
			return nil, fmt.Errorf("message %d: rebuilt %s, want %s or its lean target %s", i, out, want, lean)
		}
		rep.Verified++
		got, err := protocol.ClientData(out, true)
		if err != nil {
			return nil, fmt.Errorf("message %d: rebuilt text: %w", i, err)
		}
		if plainData, err := protocol.ClientData(want, false); err == nil && reflect.DeepEqual(got, plainData) {
			rep.SameData++
		}
		floor := len(d) - len(dd.Delta) + base64.StdEncoding.EncodedLen(len(out)-lcsLen(base, out))
		rep.FloorWireBytes += int64(floor) + wsHeader(floor)
		base = out
	}
	rep.SavedPct = saved(rep.DeltaWireBytes, rep.PlainWireBytes)
	rep.FloorSavedPct = saved(rep.FloorWireBytes, rep.PlainWireBytes)
	rep.DeflatePlain, rep.DeflateCtxPlain = deflateSizes(plain.frames)
	rep.DeflateDelta, rep.DeflateCtxDelta = deflateSizes(withDelta.frames)
	rep.SavedDeflatePct = saved(rep.DeflateDelta, rep.DeflatePlain)
	rep.SavedDeflateCtxPct = saved(rep.DeflateCtxDelta, rep.DeflateCtxPlain)
	rep.AvgPlainFrame = float64(rep.PlainBytes) / float64(cfg.Messages)
	if rep.DeltaFrames > 0 {
		rep.AvgDeltaFrame = float64(deltaFrameBytes) / float64(rep.DeltaFrames)
	}
	if rep.Verified != cfg.Messages {
		return rep, errors.New("pwload: some full frames did not leave the plain subscriber's text as base")
	}
	return rep, nil
}

// lcsLen is the length of the longest common subsequence of a and b.
func lcsLen(a, b []byte) int {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for i := range a {
		for j := range b {
			switch {
			case a[i] == b[j]:
				cur[j+1] = prev[j] + 1
			case prev[j+1] >= cur[j]:
				cur[j+1] = prev[j+1]
			default:
				cur[j+1] = cur[j]
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func saved(got, of int64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * (1 - float64(got)/float64(of))
}

// deflateSizes returns the wire bytes (payload + header) of frames sent with
// permessage-deflate: without and with context takeover.
func deflateSizes(frames [][]byte) (noCtx, ctx int64) {
	var buf bytes.Buffer
	one, _ := flate.NewWriter(&buf, flate.BestSpeed)
	for _, f := range frames {
		buf.Reset()
		one.Reset(&buf)
		_, _ = one.Write(f)
		_ = one.Flush()
		n := buf.Len() - 4
		noCtx += int64(n) + wsHeader(n)
	}
	var cbuf bytes.Buffer
	w, _ := flate.NewWriter(&cbuf, flate.BestSpeed)
	for _, f := range frames {
		before := cbuf.Len()
		_, _ = w.Write(f)
		_ = w.Flush()
		n := cbuf.Len() - before - 4
		ctx += int64(n) + wsHeader(n)
	}
	return noCtx, ctx
}

// WriteDeltaTable prints a delta report.
func WriteDeltaTable(w io.Writer, r *DeltaReport) {
	fmt.Fprintf(w, "pwload delta: %s, stream %s, %d messages, format %s, %s (channel %s)\n", r.Label, r.Stream, r.Messages, r.Format, r.Algorithm, r.Channel)
	fmt.Fprintf(w, "| subscriber | bytes received (payload) | with WS headers | per message |\n|---|---:|---:|---:|\n")
	fmt.Fprintf(w, "| without deltas | %d | %d | %.1f |\n", r.PlainBytes, r.PlainWireBytes, float64(r.PlainWireBytes)/float64(r.Messages))
	fmt.Fprintf(w, "| with deltas | %d | %d | %.1f |\n", r.DeltaBytes, r.DeltaWireBytes, float64(r.DeltaWireBytes)/float64(r.Messages))
	fmt.Fprintf(w, "saved %.1f%% (%d delta frames averaging %.1f bytes, %d full frames; %d/%d messages rebuilt byte-exact, %d to the lean target; clients surface the plain frame's data for %d/%d)\n",
		r.SavedPct, r.DeltaFrames, r.AvgDeltaFrame, r.FullFrames, r.Verified, r.Messages, r.LeanTargets, r.SameData, r.Messages)
	fmt.Fprintf(w, "floor (deltas of only the characters not shared with the base, same envelope): %d bytes, saved %.1f%%\n", r.FloorWireBytes, r.FloorSavedPct)
	fmt.Fprintf(w, "permessage-deflate, no context takeover: without deltas %d, with deltas %d (saved %.1f%%)\n", r.DeflatePlain, r.DeflateDelta, r.SavedDeflatePct)
	fmt.Fprintf(w, "permessage-deflate, context takeover:    without deltas %d, with deltas %d (saved %.1f%%)\n", r.DeflateCtxPlain, r.DeflateCtxDelta, r.SavedDeflateCtxPct)
}
