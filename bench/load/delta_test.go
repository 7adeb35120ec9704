package load

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/pushwire/pushwire/internal/testkit"
)

// TestDeltaScenarios runs `pwload --mode delta` against a pushwire binary it starts, for the
// tick and chat streams in every format: every message must be rebuilt byte-exact from the
// delta subscriber's frames (RunDelta fails otherwise), the tick stream must go out as
// deltas after the warm-up and save bytes. Counts only, never timings.
func TestDeltaScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	srv := testkit.Start(t, testkit.Options{Port: -1, Args: []string{"--log-level=warn"}})
	for _, tc := range []struct {
		scenario, format, algorithm string
		minSaved                    float64
	}{
		{"delta-ticks", "json", "fossil", 50},
		{"delta-ticks", "json", "xdelta3", 55},
		{"delta-ticks", "messagepack", "fossil", 45},
		{"delta-ticks", "protobuf", "xdelta3", 50},
		{"delta-chat", "json", "fossil", 0},
	} {
		t.Run(tc.scenario+"/"+tc.format+"/"+tc.algorithm, func(t *testing.T) {
			jsonFile := filepath.Join(t.TempDir(), "report.json")
			var out, errOut bytes.Buffer
			args := []string{"--scenario", tc.scenario, "--port", strconv.Itoa(srv.Port), "--format", tc.format,
				"--delta-algorithm", tc.algorithm, "--messages", "40", "--json-file", jsonFile}
			if code := Main(args, &out, &errOut); code != 0 {
				t.Fatalf("pwload exited %d\n%s\n%s", code, errOut.String(), out.String())
			}
			b, err := os.ReadFile(jsonFile)
			if err != nil {
				t.Fatal(err)
			}
			var r DeltaReport
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s", out.String())
			if r.Verified != 40 || r.Messages != 40 {
				t.Fatalf("rebuilt %d of %d messages", r.Verified, r.Messages)
			}
			if tc.scenario == "delta-ticks" && (r.DeltaFrames != 40 || r.SavedPct < tc.minSaved) {
				t.Errorf("%d delta frames, %.1f%% saved; want 40 and ≥ %.0f%%", r.DeltaFrames, r.SavedPct, tc.minSaved)
			}
			if r.DeltaWireBytes > r.PlainWireBytes+int64(r.FullFrames)*24 {
				t.Errorf("with deltas %d bytes, without %d: more than the markers of %d full frames", r.DeltaWireBytes, r.PlainWireBytes, r.FullFrames)
			}
		})
	}
}

func TestLCSLen(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 0}, {"abc", "abc", 3}, {"67012.25", "67010.43", 5}, {"abcdef", "acf", 3}, {"xyz", "abc", 0},
	} {
		if got := lcsLen([]byte(tt.a), []byte(tt.b)); got != tt.want {
			t.Errorf("lcsLen(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
