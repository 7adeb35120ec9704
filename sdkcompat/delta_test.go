package sdkcompat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushwire/pushwire/delta"
	"github.com/pushwire/pushwire/delta/deltatest"
)

// requireXdelta3 returns the xdelta3 executable, failing (not skipping) when it is missing:
// the VCDIFF interop check is part of `make test`.
func requireXdelta3(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("xdelta3")
	if err != nil {
		t.Fatalf("xdelta3 is not on PATH: the delta interop test decodes every VCDIFF delta with it; "+
			"run scripts/deps-delta.sh (or `apt-get install xdelta3`, `make deps`): %v", err)
	}
	return p
}

// deltaCase is one (base, target) pair with our two encodings of it.
type deltaCase struct {
	id, name             string
	base, target         []byte
	fossilD, vcdiffD     []byte
	xdelta3Encode        bool // also encode with xdelta3 -e and decode with our VCDIFFApply
	fossilOut, vcdiffOut []byte
}

func deltaInteropCases() []*deltaCase {
	r := rand.New(rand.NewPCG(2024, 6))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	big := bytes.Repeat([]byte(`{"event":"price","channel":"ticker:BTC","data":"{\"bid\":67210.51}"}`+"\n"), 1<<20/70)
	bigEdited := append([]byte(nil), big...)
	for i := 0; i < 40; i++ {
		p := r.IntN(len(bigEdited) - 8)
		copy(bigEdited[p:], fmt.Sprintf("%08d", i))
	}
	bigEdited = append(bigEdited, "tail 🚀"...)
	bin := random(8192)
	binEdited := append(append(append([]byte(nil), bin[:3000]...), random(100)...), bin[2000:]...)
	multiBase, multiTarget := deltatest.LargePair(6, 64<<10, 9<<20)
	uni := []byte("héllo wörld — 日本語のテキスト 🚀🚀🚀 Привет мир ελληνικά 😀 ∑∑∑∑∑∑∑∑")
	table := []struct {
		name         string
		base, target []byte
	}{
		{"empty-empty", nil, nil},
		{"empty-base", nil, []byte(`{"event":"hello"}`)},
		{"empty-target", []byte(`{"event":"hello"}`), nil},
		{"tiny", []byte("ab"), []byte("abab")},
		{"identical", big[:3000], big[:3000]},
		{"different", random(2000), random(2500)},
		{"binary", bin, binEdited},
		{"runs", []byte("0123456789"), append(bytes.Repeat([]byte{'z'}, 500), "0123456789"...)},
		{"unicode", uni, bytes.Replace(uni, []byte("日本語"), []byte("中文的テキスト"), 1)},
		{"1MB-edited", big, bigEdited},
		{"1MB-random", random(1 << 20), random(1 << 20)},
		{"9MB-multiwindow", multiBase, multiTarget}, // two VCDIFF windows
	}
	var cases []*deltaCase
	for _, tc := range table {
		cases = append(cases, &deltaCase{name: "table/" + tc.name, base: tc.base, target: tc.target, xdelta3Encode: true})
	}
	streams := deltatest.Corpus(20240601, 50)
	streams = append(streams, deltatest.Stream{Name: "price-ticks-minimal", Frames: deltatest.PriceTicksMinimal(7, 50)})
	for i, p := range deltatest.Pairs(streams) {
		cases = append(cases, &deltaCase{name: p.Name, base: p.Base, target: p.Target, xdelta3Encode: i%4 == 0})
	}
	for i, c := range cases {
		c.id = fmt.Sprintf("c%04d", i)
		c.fossilD = delta.FossilEncode(c.base, c.target)
		c.vcdiffD = delta.VCDIFFEncode(c.base, c.target)
	}
	return cases
}

// TestDeltaInterop proves the delta package against independent implementations: every
// delta our encoders produce for the seeded corpus of JSON streams (price ticks, order
// timelines, chat edits, random edits) and for edge cases (empty, binary, Unicode, 1 MB) is
// applied with npm fossil-delta applyDelta, npm @ably/vcdiff-decoder decode and Debian's
// `xdelta3 -d`, and must give back the exact target bytes; our Go decoders must decode them
// too, as well as deltas made by fossil-delta createDelta and by `xdelta3 -e`.
func TestDeltaInterop(t *testing.T) {
	dir := sdkDir(t)
	node := requireNode(t)
	ensureNodeModules(t, dir)
	xd := requireXdelta3(t)

	// No deadline of our own: how long 257 node and xdelta3 runs take depends on the
	// machine's load, and `go test -timeout` already ends a run that hangs.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	work := t.TempDir()
	cases := deltaInteropCases()
	ids := make([]string, len(cases))
	for i, c := range cases {
		ids[i] = c.id
		for ext, b := range map[string][]byte{".base": c.base, ".target": c.target, ".fossil": c.fossilD, ".vcdiff": c.vcdiffD} {
			if err := os.WriteFile(filepath.Join(work, c.id+ext), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	list, _ := json.Marshal(ids)
	if err := os.WriteFile(filepath.Join(work, "cases.json"), list, 0o600); err != nil {
		t.Fatal(err)
	}

	// 1. npm decoders, one node process for all cases.
	cmd := exec.CommandContext(ctx, node, filepath.Join("delta", "apply.js"), work)
	cmd.Dir = dir
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("node: %s", strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("node delta/apply.js: %v", err)
	}
	read := func(name string) ([]byte, string) {
		b, err := os.ReadFile(filepath.Join(work, name))
		if err == nil {
			return b, ""
		}
		msg, _ := os.ReadFile(filepath.Join(work, name+".err"))
		return nil, fmt.Sprintf("%s failed: %s", name, firstLine(string(msg)))
	}
	var fossilChecked, vcdiffChecked, npmDeltas int
	// Sizes over the corpus pairs: ours against fossil-delta's createDelta (Fossil SCM's
	// encoder) and against `xdelta3 -e -S none -n -A` (same VCDIFF subset).
	var oursFossil, npmFossil, oursVCDIFF, xdVCDIFF int
	for _, c := range cases {
		if got, msg := read(c.id + ".fossil.out"); msg != "" {
			t.Errorf("%s: fossil-delta applyDelta rejected our delta: %s", c.name, msg)
		} else if !bytes.Equal(got, c.target) {
			t.Errorf("%s: fossil-delta applyDelta gave %d bytes, want the %d target bytes", c.name, len(got), len(c.target))
		} else {
			fossilChecked++
		}
		if got, msg := read(c.id + ".vcdiff.out"); msg != "" {
			t.Errorf("%s: @ably/vcdiff-decoder rejected our delta: %s", c.name, msg)
		} else if !bytes.Equal(got, c.target) {
			t.Errorf("%s: @ably/vcdiff-decoder gave %d bytes, want the %d target bytes", c.name, len(got), len(c.target))
		} else {
			vcdiffChecked++
		}
		// Independent encoder -> our decoder.
		if d, msg := read(c.id + ".fossil.npm"); msg != "" {
			t.Errorf("%s: fossil-delta createDelta: %s", c.name, msg)
		} else if got, err := delta.FossilApply(c.base, d); err != nil || !bytes.Equal(got, c.target) {
			t.Errorf("%s: FossilApply of fossil-delta's createDelta: err %v, equal %v", c.name, err, bytes.Equal(got, c.target))
		} else {
			npmDeltas++
			if !strings.HasPrefix(c.name, "table/") {
				oursFossil += len(c.fossilD)
				npmFossil += len(d)
			}
		}
		// Our own decoders.
		if got, err := delta.FossilApply(c.base, c.fossilD); err != nil || !bytes.Equal(got, c.target) {
			t.Errorf("%s: FossilApply of our delta: err %v", c.name, err)
		}
		if got, err := delta.VCDIFFApply(c.base, c.vcdiffD); err != nil || !bytes.Equal(got, c.target) {
			t.Errorf("%s: VCDIFFApply of our delta: err %v", c.name, err)
		}
	}

	// 2. xdelta3 -d on every VCDIFF delta, and xdelta3 -e deltas through VCDIFFApply.
	var mu sync.Mutex
	var xdDecoded, xdEncoded int
	jobs := make(chan *deltaCase)
	var wg sync.WaitGroup
	for range max(2, runtime.NumCPU()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range jobs {
				dec, enc, ref := xdelta3Check(ctx, t, xd, work, c)
				mu.Lock()
				xdDecoded += dec
				xdEncoded += enc
				if ref > 0 && !strings.HasPrefix(c.name, "table/") {
					oursVCDIFF += len(c.vcdiffD)
					xdVCDIFF += ref
				}
				mu.Unlock()
			}
		}()
	}
	for _, c := range cases {
		jobs <- c
	}
	close(jobs)
	wg.Wait()

	t.Logf("%d cases: fossil-delta applied %d of our Fossil deltas, @ably/vcdiff-decoder %d and xdelta3 -d %d of our VCDIFF deltas; "+
		"FossilApply decoded %d fossil-delta deltas, VCDIFFApply %d xdelta3 -e deltas",
		len(cases), fossilChecked, vcdiffChecked, xdDecoded, npmDeltas, xdEncoded)
	// Our encoders must stay at least as compact as the reference encoders on the frame corpus.
	t.Logf("corpus delta bytes: Fossil ours %d vs fossil-delta createDelta %d; VCDIFF ours %d vs xdelta3 -e %d (same pairs)",
		oursFossil, npmFossil, oursVCDIFF, xdVCDIFF)
	if npmFossil == 0 || oursFossil > npmFossil {
		t.Errorf("our Fossil deltas total %d bytes, fossil-delta's createDelta %d: want ours ≤ theirs", oursFossil, npmFossil)
	}
	if xdVCDIFF == 0 || oursVCDIFF > xdVCDIFF {
		t.Errorf("our VCDIFF deltas total %d bytes, xdelta3 -e %d: want ours ≤ theirs", oursVCDIFF, xdVCDIFF)
	}
}

// xdelta3Check decodes c's VCDIFF delta with `xdelta3 -d` and, for some cases, decodes
// `xdelta3 -e` deltas (plain, and with xdelta3's application header and Adler-32) with
// VCDIFFApply. It returns how many of each succeeded, and the size of the `xdelta3 -e -n -A`
// delta (0 when not made).
func xdelta3Check(ctx context.Context, t *testing.T, xd, work string, c *deltaCase) (decoded, encoded, plainSize int) {
	p := func(ext string) string { return filepath.Join(work, c.id+ext) }
	run := func(args ...string) error {
		out, err := exec.CommandContext(ctx, xd, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("xdelta3 %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := run("-d", "-f", "-s", p(".base"), p(".vcdiff"), p(".xd.out")); err != nil {
		t.Errorf("%s: xdelta3 rejected our VCDIFF delta: %v", c.name, err)
	} else if got, err := os.ReadFile(p(".xd.out")); err != nil || !bytes.Equal(got, c.target) {
		t.Errorf("%s: xdelta3 -d gave %d bytes, want the %d target bytes (%v)", c.name, len(got), len(c.target), err)
	} else {
		decoded++
	}
	if !c.xdelta3Encode {
		return decoded, 0, 0
	}
	for i, flags := range [][]string{{"-n", "-A"}, {}} {
		name := fmt.Sprintf(".xd%d.vcdiff", i)
		args := append(append([]string{"-e", "-f", "-S", "none"}, flags...), "-s", p(".base"), p(".target"), p(name))
		if err := run(args...); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		d, err := os.ReadFile(p(name))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got, err := delta.VCDIFFApply(c.base, d); err != nil || !bytes.Equal(got, c.target) {
			t.Errorf("%s: VCDIFFApply of `xdelta3 %s`: err %v, equal %v", c.name, strings.Join(args[:len(args)-3], " "), err, bytes.Equal(got, c.target))
		} else {
			encoded++
			if i == 0 {
				plainSize = len(d)
			}
		}
	}
	return decoded, encoded, plainSize
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
