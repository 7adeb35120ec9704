package wsframe

import (
	"errors"
	"testing"
)

// clientFrame builds a masked client frame.
func clientFrame(fin bool, op Opcode, payload string) []byte {
	key := [4]byte{1, 2, 3, 4}
	b := AppendHeader(nil, fin, op, len(payload))
	b[1] |= 0x80
	b = append(b, key[:]...)
	p := []byte(payload)
	Mask(key, 0, p)
	return append(b, p...)
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

func TestAssembler(t *testing.T) {
	type want struct {
		op Opcode
		p  string
		c  bool // compressed
	}
	rsv1 := func(f []byte) []byte { f[0] |= 0x40; return f }
	for _, tc := range []struct {
		name    string
		in      []byte
		max     int64
		deflate bool
		want    []want
		errCode uint16
	}{
		{name: "rsv1 without deflate", in: rsv1(clientFrame(true, OpText, "x")), errCode: 1002},
		{name: "compressed (no UTF-8 check before inflating)", in: rsv1(clientFrame(true, OpText, "\xff")), deflate: true,
			want: []want{{OpText, "\xff", true}}},
		{name: "compressed fragments", in: cat(rsv1(clientFrame(false, OpText, "a")), clientFrame(true, OpContinuation, "b"), clientFrame(true, OpText, "c")), deflate: true,
			want: []want{{OpText, "ab", true}, {OpText, "c", false}}},
		{name: "rsv1 on a continuation", in: cat(clientFrame(false, OpText, "a"), rsv1(clientFrame(true, OpContinuation, "b"))), deflate: true, errCode: 1002},
		{name: "rsv1 on a ping", in: rsv1(clientFrame(true, OpPing, "p")), deflate: true, errCode: 1002},
		{name: "text", in: clientFrame(true, OpText, "hi"), want: []want{{OpText, "hi", false}}},
		{name: "fragmented with ping between", in: cat(
			clientFrame(false, OpText, "he"), clientFrame(true, OpPing, "p"),
			clientFrame(false, OpContinuation, "l"), clientFrame(true, OpContinuation, "lo")),
			want: []want{{OpPing, "p", false}, {OpText, "hello", false}}},
		{name: "two messages", in: cat(clientFrame(true, OpText, "a"), clientFrame(true, OpBinary, "b")),
			want: []want{{OpText, "a", false}, {OpBinary, "b", false}}},
		{name: "close", in: clientFrame(true, OpClose, "\x03\xe8bye"), want: []want{{OpClose, "\x03\xe8bye", false}}},
		{name: "unmasked", in: AppendFrame(nil, OpText, []byte("x")), errCode: 1002},
		{name: "stray continuation", in: clientFrame(true, OpContinuation, "x"), errCode: 1002},
		{name: "interleaved message", in: cat(clientFrame(false, OpText, "a"), clientFrame(true, OpText, "b")), errCode: 1002},
		{name: "too big", in: clientFrame(true, OpText, "12345"), max: 4, errCode: 1009},
		{name: "too big across fragments", in: cat(clientFrame(false, OpText, "123"), clientFrame(true, OpContinuation, "45")), max: 4, errCode: 1009},
		{name: "bad utf8", in: clientFrame(true, OpText, "\xff"), errCode: 1007},
		{name: "utf8 split across fragments", in: cat(clientFrame(false, OpText, "\xe2\x82"), clientFrame(true, OpContinuation, "\xac")),
			want: []want{{OpText, "€", false}}},
		{name: "close 1 byte", in: clientFrame(true, OpClose, "x"), errCode: 1002},
		{name: "close bad utf8 reason", in: clientFrame(true, OpClose, "\x03\xe8\xff"), errCode: 1007},
	} {
		a := Assembler{MaxMessage: tc.max, Deflate: tc.deflate}
		buf := tc.in
		var got []want
		var err error
		// Feed one byte more at a time to exercise partial input.
		avail := 0
		for len(buf) > 0 && err == nil {
			if avail < len(buf) {
				avail++
			}
			var n int
			var m Message
			var ok bool
			n, m, ok, err = a.Next(buf[:avail])
			if ok {
				got = append(got, want{m.Op, string(m.Payload), m.Compressed})
			}
			if n == 0 && !ok && err == nil && avail == len(buf) {
				t.Fatalf("%s: incomplete input", tc.name)
			}
			buf = buf[n:]
			avail -= n
		}
		var ce *CloseError
		if tc.errCode != 0 {
			if !errors.As(err, &ce) || ce.Code != tc.errCode {
				t.Errorf("%s: err = %v, want close %d", tc.name, err, tc.errCode)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: message %d = %+v, want %+v", tc.name, i, got[i], tc.want[i])
			}
		}
	}
}

// FuzzAssembler feeds arbitrary bytes to an Assembler and checks it never
// panics, never consumes more than it was given, and only returns valid UTF-8
// text messages within the size limit.
func FuzzAssembler(f *testing.F) {
	f.Add(cat(clientFrame(false, OpText, "he"), clientFrame(true, OpPing, "p"), clientFrame(true, OpContinuation, "llo")))
	f.Add(clientFrame(true, OpClose, "\x03\xe8bye"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a := Assembler{MaxMessage: 64, Deflate: len(b) > 0 && b[len(b)-1]&1 == 1}
		for len(b) > 0 {
			n, m, ok, err := a.Next(b)
			if err != nil || (n == 0 && !ok) {
				return
			}
			if n > len(b) {
				t.Fatalf("consumed %d of %d", n, len(b))
			}
			if ok && !m.Op.IsControl() && int64(len(m.Payload)) > a.MaxMessage {
				t.Fatalf("message of %d bytes over limit", len(m.Payload))
			}
			if ok && m.Compressed && (!a.Deflate || m.Op.IsControl()) {
				t.Fatalf("compressed %v message without deflate (%v)", m.Op, a.Deflate)
			}
			b = b[n:]
		}
	})
}
