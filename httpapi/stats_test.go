package httpapi

import (
	"strings"
	"testing"
)

func TestParseMeminfo(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     hostMemory
	}{
		{"Linux", "MemTotal:       24683748 kB\nMemFree:         1000000 kB\nMemAvailable:   21778412 kB\nBuffers: 1 kB\n",
			hostMemory{Total: 24683748 * 1024, Free: 21778412 * 1024, Used: (24683748 - 21778412) * 1024, Percent: float64(24683748-21778412) / 24683748 * 100}},
		{"Empty", "", hostMemory{}},
		{"NoAvailable", "MemTotal: 1000 kB\n", hostMemory{Total: 1024000, Used: 1024000, Percent: 100}},
		{"AvailableOverTotal", "MemTotal: 10 kB\nMemAvailable: 20 kB\n", hostMemory{Total: 10240, Free: 10240}},
		{"Garbage", "MemTotal: lots\nnot a line\n:\nMemAvailable:\n", hostMemory{}},
		{"Huge", "MemTotal: 99999999999999999999 kB\n", hostMemory{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseMeminfo(strings.NewReader(tc.in)); got != tc.want {
				t.Errorf("parseMeminfo = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// FuzzParseMeminfo: any text gives used + free = total, free <= total, percent in [0, 100].
func FuzzParseMeminfo(f *testing.F) {
	f.Add("MemTotal:       24683748 kB\nMemAvailable:   21778412 kB\n")
	f.Add("MemTotal: 1 kB\nMemAvailable: 2 kB\n")
	f.Add("MemTotal:\x00 9007199254740992 kB\n")
	f.Fuzz(func(t *testing.T, s string) {
		m := parseMeminfo(strings.NewReader(s))
		if m.Free > m.Total || m.Used+m.Free != m.Total || m.Percent < 0 || m.Percent > 100 {
			t.Fatalf("parseMeminfo(%q) = %+v", s, m)
		}
	})
}
