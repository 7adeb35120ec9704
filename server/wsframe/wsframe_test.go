package wsframe

import (
	"bytes"
	"errors"
	"testing"
)

func TestAcceptKeyRFCExample(t *testing.T) {
	// RFC 6455 section 1.3.
	if got := AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("AcceptKey = %q", got)
	}
	if !ValidKey("dGhlIHNhbXBsZSBub25jZQ==") || ValidKey("short") || ValidKey("!!!!!!!!!!!!!!!!!!!!!!!!") {
		t.Fatal("ValidKey")
	}
}

func TestAppendGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want []byte
	}{
		// RFC 6455 section 5.7: unmasked "Hello".
		{"text hello", AppendFrame(nil, OpText, []byte("Hello")), []byte{0x81, 0x05, 'H', 'e', 'l', 'l', 'o'}},
		{"empty ping", AppendFrame(nil, OpPing, nil), []byte{0x89, 0x00}},
		{"126 bytes", AppendHeader(nil, true, OpBinary, 126), []byte{0x82, 126, 0x00, 126}},
		{"65535 bytes", AppendHeader(nil, true, OpBinary, 65535), []byte{0x82, 126, 0xff, 0xff}},
		{"65536 bytes", AppendHeader(nil, true, OpBinary, 65536), []byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
		{"non-final", AppendHeader(nil, false, OpText, 1), []byte{0x01, 0x01}},
		{"close 4100", AppendClose(nil, 4100, "slow"), []byte{0x88, 0x06, 0x10, 0x04, 's', 'l', 'o', 'w'}},
		{"two frames one buffer", AppendFrame(AppendFrame(nil, OpText, []byte("a")), OpText, []byte("b")),
			[]byte{0x81, 0x01, 'a', 0x81, 0x01, 'b'}},
	} {
		if !bytes.Equal(tc.got, tc.want) {
			t.Errorf("%s: got % x, want % x", tc.name, tc.got, tc.want)
		}
	}
	if c := AppendClose(nil, 1000, string(make([]byte, 300))); len(c) != 2+125 {
		t.Errorf("long close reason not truncated: %d bytes", len(c))
	}
}

func TestParseHeader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []byte
		rsv     byte
		want    Header
		n       int
		wantErr error
	}{
		// RFC 6455 section 5.7: masked "Hello".
		{name: "masked hello", in: []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d},
			want: Header{Fin: true, Op: OpText, Masked: true, Key: [4]byte{0x37, 0xfa, 0x21, 0x3d}, Length: 5}, n: 6},
		{name: "16-bit length", in: []byte{0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4},
			want: Header{Fin: true, Op: OpBinary, Masked: true, Key: [4]byte{1, 2, 3, 4}, Length: 256}, n: 8},
		{name: "64-bit length", in: []byte{0x02, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9},
			want: Header{Op: OpBinary, Masked: true, Key: [4]byte{9, 9, 9, 9}, Length: 65536}, n: 14},
		{name: "continuation", in: []byte{0x80, 0x80, 0, 0, 0, 0},
			want: Header{Fin: true, Op: OpContinuation, Masked: true}, n: 6},
		{name: "rsv1 allowed", in: []byte{0xc1, 0x80, 0, 0, 0, 0}, rsv: 0x4,
			want: Header{Fin: true, RSV: 4, Op: OpText, Masked: true}, n: 6},
		{name: "short 1 byte", in: []byte{0x81}},
		{name: "short ext len", in: []byte{0x81, 0xfe, 0x01}},
		{name: "short key", in: []byte{0x81, 0x85, 0x37, 0xfa}},
		{name: "unmasked", in: []byte{0x81, 0x05}, wantErr: ErrUnmasked},
		{name: "rsv1 not negotiated", in: []byte{0xc1, 0x80, 0, 0, 0, 0}, wantErr: ErrReservedBits},
		{name: "opcode 3", in: []byte{0x83, 0x80, 0, 0, 0, 0}, wantErr: ErrBadOpcode},
		{name: "opcode 0xB", in: []byte{0x8b, 0x80, 0, 0, 0, 0}, wantErr: ErrBadOpcode},
		{name: "fragmented ping", in: []byte{0x09, 0x80, 0, 0, 0, 0}, wantErr: ErrControlFragment},
		{name: "long ping", in: []byte{0x89, 0xfe, 0x00, 0x7e, 0, 0, 0, 0}, wantErr: ErrControlTooLong},
		{name: "non-minimal 16", in: []byte{0x81, 0xfe, 0x00, 0x05, 0, 0, 0, 0}, wantErr: ErrBadLength},
		{name: "non-minimal 64", in: []byte{0x81, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0}, wantErr: ErrBadLength},
		{name: "top bit 64", in: []byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, wantErr: ErrBadLength},
	} {
		h, n, err := ParseHeader(tc.in, tc.rsv, true)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if n != tc.n || (n > 0 && h != tc.want) {
			t.Errorf("%s: got %+v n=%d, want %+v n=%d", tc.name, h, n, tc.want, tc.n)
		}
	}
}

func TestMaskRoundTripInPieces(t *testing.T) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	p := []byte{0x7f, 0x9f, 0x4d, 0x51, 0x58} // RFC 6455 masked "Hello"
	pos := Mask(key, 0, p[:3])
	Mask(key, pos, p[3:])
	if string(p) != "Hello" {
		t.Fatalf("unmasked %q", p)
	}
}

func TestParseClose(t *testing.T) {
	for _, tc := range []struct {
		in     []byte
		code   uint16
		reason string
		ok     bool
	}{
		{nil, 1005, "", true},
		{[]byte{0x03}, 0, "", false},
		{[]byte{0x03, 0xe8}, 1000, "", true},
		{[]byte{0x10, 0x04, 'x'}, 4100, "x", true},
		{[]byte{0x03, 0xed}, 1005, "", false}, // 1005 must not be sent
		{[]byte{0x03, 0xee}, 1006, "", false},
		{[]byte{0x00, 0x00}, 0, "", false},
	} {
		code, reason, ok := ParseClose(tc.in)
		if code != tc.code || string(reason) != tc.reason || ok != tc.ok {
			t.Errorf("ParseClose(% x) = %d %q %v, want %d %q %v", tc.in, code, reason, ok, tc.code, tc.reason, tc.ok)
		}
	}
}

// FuzzParseHeader checks that ParseHeader never panics, never claims more bytes
// than it was given, and that every header it accepts re-encodes (unmasked)
// with the same fin/opcode/length.
func FuzzParseHeader(f *testing.F) {
	for _, s := range [][]byte{
		{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d},
		{0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4},
		{0x02, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9},
		{0x89, 0x80, 0, 0, 0, 0},
		{0x88, 0x82, 1, 2, 3, 4, 5, 6},
	} {
		f.Add(s, byte(0), true)
	}
	f.Fuzz(func(t *testing.T, b []byte, rsv byte, requireMask bool) {
		h, n, err := ParseHeader(b, rsv&7, requireMask)
		if err != nil || n == 0 {
			return
		}
		if n > len(b) || n > MaxHeaderLen {
			t.Fatalf("n=%d for %d input bytes", n, len(b))
		}
		if h.Length < 0 || (h.Op.IsControl() && (h.Length > MaxControlPayload || !h.Fin)) {
			t.Fatalf("accepted bad header %+v", h)
		}
		enc := AppendHeader(nil, h.Fin, h.Op, int(h.Length))
		enc[1] |= 0x80
		enc = append(enc, h.Key[:]...)
		h2, n2, err := ParseHeader(enc, 0, true)
		if err != nil || n2 != len(enc) || h2.Fin != h.Fin || h2.Op != h.Op || h2.Length != h.Length {
			t.Fatalf("re-encode mismatch: %+v -> % x -> %+v n=%d err=%v", h, enc, h2, n2, err)
		}
	})
}
