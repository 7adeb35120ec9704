package protocol

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// subfeatGolden are the frames of wildcard subscriptions, metachannels, filter-expression
// refusals and delta algorithm choice (V2 only: V1 sockets are refused these features),
// compared with testdata/golden/subfeat/*.json (rewrite with -update).
var subfeatGolden = []struct {
	name string
	got  []byte
}{
	{"meta_channel_occupied", MetaCountFrame(MetaChannelOccupied, "meta-room-1", 1)},
	{"meta_subscription_count", MetaCountFrame(MetaSubscriptionCount, "meta-room-1", 2)},
	{"meta_channel_vacated", MetaCountFrame(MetaChannelVacated, "meta-room-1", 0)},
	{"meta_member_added", MetaMemberFrame(MetaMemberAdded, "presence-room", "u-1")},
	{"meta_member_removed", MetaMemberFrame(MetaMemberRemoved, "presence-room", "u-1")},
	{"wildcard_ack", SubscriptionSucceeded(V2, "wildcard-3f9a-*", []byte("{}"))},
	{"wildcard_message", (&Message{Event: "wildcard-event", Channel: "wildcard-3f9a-match", Data: Str(`{"marker":"match"}`),
		MessageID: "3f5c1c0e-9d55-4a4e-8c0b-1a2b3c4d5e6f"}).AppendV2(nil)},
	{"wildcard_refused", ErrorFrame(V2, ValidateWildcard("private-*", 0))},
	{"expression_refused", SubscriptionError(V2, "orders", "SubscriptionError", 400, mustExprErr(`"data.total >="`))},
	{"delta_enabled_xdelta3", DeltaEnabled("", DeltaAlgXdelta3)},
	{"delta_algorithms_refused", ErrorFrame(V2, mustAlgErr(`{"algorithms":["zstd"]}`))},
}

func mustExprErr(raw string) *Error {
	_, err := ParseExpressionOption(json.RawMessage(raw))
	return err
}

func mustAlgErr(raw string) *Error {
	_, err := ParseDeltaAlgorithms(json.RawMessage(raw))
	return err
}

func TestSubfeatGoldenFrames(t *testing.T) {
	for _, g := range subfeatGolden {
		path := filepath.Join("testdata", "golden", "subfeat", g.name+".json")
		if !json.Valid(g.got) {
			t.Errorf("%s: not JSON: %s", g.name, g.got)
		}
		if *updateGolden {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, append(bytes.Clone(g.got), '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v (run go test ./protocol -run TestSubfeatGoldenFrames -update)", g.name, err)
		}
		if !bytes.Equal(bytes.TrimSuffix(want, []byte("\n")), g.got) {
			t.Errorf("%s:\n got %s\nwant %s", g.name, g.got, want)
		}
	}
}
