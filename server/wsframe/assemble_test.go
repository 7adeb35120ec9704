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
		bud := &countBudget{limit: 256}
		a := Assembler{MaxMessage: 64, Deflate: len(b) > 0 && b[len(b)-1]&1 == 1, Budget: bud}
		// Feed in pieces cut where the input's second byte says, so frames arrive split.
		step := 1 + len(b)
		if len(b) > 1 {
			step = 1 + int(b[1]%17)
		}
		received := 0
		defer func() {
			a.Reset()
			if bud.used != 0 {
				t.Fatalf("%d bytes still reserved after Reset", bud.used)
			}
		}()
		for len(b) > 0 {
			n, m, ok, err := a.Next(b[:min(len(b), step)])
			if err != nil || (n == 0 && !ok) {
				if err == nil && step < len(b) {
					step += 1 + step/2
					continue
				}
				return
			}
			received += n
			if int64(a.Held()) != bud.used || a.Held() > 2*received+minGrow {
				t.Fatalf("holds %d (reserved %d) after %d bytes", a.Held(), bud.used, received)
			}
			if n > len(b) {
				t.Fatalf("consumed %d of %d", n, len(b))
			}
			if ok && !m.Op.IsControl() && int64(len(m.Payload)) > MessageLimit(a.MaxMessage, m.Compressed) {
				t.Fatalf("message of %d bytes over limit", len(m.Payload))
			}
			if ok && m.Compressed && (!a.Deflate || m.Op.IsControl()) {
				t.Fatalf("compressed %v message without deflate (%v)", m.Op, a.Deflate)
			}
			b = b[n:]
		}
	})
}

// countBudget is a Budget with a limit, counting what is reserved.
type countBudget struct{ limit, used int64 }

func (b *countBudget) TryReserve(n int64) bool {
	if b.used+n > b.limit {
		return false
	}
	b.used += n
	return true
}
func (b *countBudget) Release(n int64) { b.used -= n }

// header declaring a masked data frame of length n.
func declare(fin bool, op Opcode, n int) []byte {
	b := AppendHeader(nil, fin, op, n)
	b[1] |= 0x80
	return append(b, 9, 9, 9, 9)
}

// TestAssemblerMemoryFollowsBytes: a header declaring 1 MiB makes the assembler hold what
// arrived (within a factor of two), not what was declared; the buffer is reserved in the
// budget, and released once the message is complete.
func TestAssemblerMemoryFollowsBytes(t *testing.T) {
	bud := &countBudget{limit: 4 << 20}
	a := Assembler{MaxMessage: 1 << 20, Budget: bud}
	in := append(declare(true, OpBinary, 1<<20), make([]byte, 10)...)
	n, _, ok, err := a.Next(in)
	if err != nil || ok || n != len(in) {
		t.Fatalf("Next = %d %v %v", n, ok, err)
	}
	if a.Held() > minGrow || bud.used != int64(a.Held()) {
		t.Fatalf("after 10 of 1 MiB: holds %d bytes, reserved %d", a.Held(), bud.used)
	}
	got := 10
	chunk := make([]byte, 1000)
	for got < 1<<20 {
		k := min(len(chunk), 1<<20-got)
		n, m, ok, err := a.Next(chunk[:k])
		if err != nil || n != k {
			t.Fatalf("Next = %d %v", n, err)
		}
		got += k
		if a.Held() > 2*got+minGrow && !ok {
			t.Fatalf("holds %d bytes after %d received", a.Held(), got)
		}
		if ok && len(m.Payload) != 1<<20 {
			t.Fatalf("message of %d bytes", len(m.Payload))
		}
	}
	if a.Held() != 0 || bud.used != 0 {
		t.Fatalf("after the message: holds %d, reserved %d", a.Held(), bud.used)
	}
}

// TestAssemblerShrinksAfterFragments: after a fragmented message the buffer is gone.
func TestAssemblerShrinksAfterFragments(t *testing.T) {
	bud := &countBudget{limit: 4 << 20}
	a := Assembler{Budget: bud}
	big := string(make([]byte, 256<<10))
	in := cat(clientFrame(false, OpBinary, big), clientFrame(false, OpContinuation, big), clientFrame(true, OpContinuation, big))
	for len(in) > 0 {
		n, m, ok, err := a.Next(in)
		if err != nil || n == 0 {
			t.Fatalf("Next = %d %v", n, err)
		}
		in = in[n:]
		if ok && len(m.Payload) != 3*len(big) {
			t.Fatalf("message of %d bytes", len(m.Payload))
		}
	}
	if a.Held() != 0 || bud.used != 0 {
		t.Fatalf("holds %d, reserved %d after the message", a.Held(), bud.used)
	}
}

// TestAssemblerBudgetRefuses: past the budget the message fails with 1013 and nothing stays
// reserved after Reset.
func TestAssemblerBudgetRefuses(t *testing.T) {
	bud := &countBudget{limit: 4096}
	a := Assembler{Budget: bud}
	in := append(declare(true, OpBinary, 1<<20), make([]byte, 3000)...)
	if _, _, _, err := a.Next(in); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := a.Next(make([]byte, 8000))
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != CodeTryAgainLater {
		t.Fatalf("err = %v, want close %d", err, CodeTryAgainLater)
	}
	a.Reset()
	if bud.used != 0 {
		t.Fatalf("reserved %d after Reset", bud.used)
	}
}
