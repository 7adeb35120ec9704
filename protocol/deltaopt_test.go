package protocol

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestParseDeltaAlgorithms(t *testing.T) {
	tests := []struct {
		data string
		want []string
		err  string
	}{
		{``, nil, ""},
		{`null`, nil, ""},
		{`{}`, nil, ""},
		{`{"algorithms":null}`, nil, ""},
		{`{"algorithms":["fossil","xdelta3"]}`, []string{"fossil", "xdelta3"}, ""},
		{`{"algorithms":["xdelta3","fossil"]}`, []string{"xdelta3", "fossil"}, ""},
		{`{"algorithms":["VCDIFF","xdelta3","Fossil"]}`, []string{"xdelta3", "fossil"}, ""},
		{`{"algorithms":["zstd","fossil"]}`, []string{"fossil"}, ""},
		{`"{\"algorithms\":[\"vcdiff\"]}"`, []string{"xdelta3"}, ""},
		{`{"algorithms":["zstd"]}`, nil, `none of the requested algorithms is supported; this server offers "fossil" and "xdelta3"`},
		{`{"algorithms":[]}`, nil, "none of the requested algorithms"},
		{`{"algorithms":"fossil"}`, nil, "algorithms must be an array of names"},
		{`{"algorithms":[1]}`, nil, "algorithms must be an array of names"},
		{`{"algorithms":[` + strings.Repeat(`"fossil",`, MaxDeltaAlgorithms) + `"fossil"]}`, nil, "17 algorithms, the limit is 16"},
		{`[1]`, nil, "Invalid enable_delta_compression data"},
	}
	for _, tt := range tests {
		got, err := ParseDeltaAlgorithms(json.RawMessage(tt.data))
		if tt.err != "" {
			if err == nil || err.Code != CodeGeneric || !strings.Contains(err.Message, tt.err) {
				t.Errorf("%.50s: %v %v, want 4000 %q", tt.data, got, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%.50s: %v %v, want %v", tt.data, got, err, tt.want)
		}
	}
}

func FuzzParseDeltaAlgorithms(f *testing.F) {
	for _, s := range []string{`{"algorithms":["fossil","xdelta3"]}`, `{"algorithms":["vcdiff"]}`, `{"algorithms":["zstd"]}`,
		`"{\"algorithms\":[]}"`, `{"algorithms":[1,null]}`, `null`, `{`, `{"algorithms":"x"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		algs, err := ParseDeltaAlgorithms(json.RawMessage(data))
		if err != nil {
			if algs != nil || err.Code != CodeGeneric {
				t.Fatalf("%v with %v", err, algs)
			}
			return
		}
		seen := map[string]bool{}
		for _, a := range algs {
			if (a != DeltaAlgFossil && a != DeltaAlgXdelta3) || seen[a] {
				t.Fatalf("algorithms %v", algs)
			}
			seen[a] = true
		}
	})
}
