// Package archtest fails the build when a package imports something the layering rules of
// ARCHITECTURE.md forbid. Each rule carries its reason.
package archtest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/pushwire/pushwire/internal/testkit"
)

const mod = "github.com/pushwire/pushwire/"

type pkg struct {
	ImportPath string
	Deps       []string
}

type rule struct {
	pkg    string   // package the rule applies to (module-relative)
	deny   []string // module-relative packages it must not depend on, even indirectly
	onlyOf []string // if set: the only module packages it may depend on
	why    string
}

var rules = []rule{
	{pkg: "protocol", onlyOf: []string{"protocol/wirepb"}, why: "protocol is the pure wire layer at the bottom: it imports nothing of ours but its generated protobuf schema"},
	{pkg: "protocol/wirepb", onlyOf: []string{}, why: "wirepb is generated protobuf code; it imports nothing of ours"},
	{pkg: "config", onlyOf: []string{"protocol", "protocol/wirepb"}, why: "config is plain values; it may only use protocol"},
	{pkg: "delta", onlyOf: []string{"protocol", "protocol/wirepb"}, why: "delta is pure codecs; it may only use protocol"},
	{pkg: "server/wsframe", onlyOf: []string{}, why: "wsframe is the pure WebSocket frame codec; it imports nothing of ours"},
	{pkg: "channels", deny: []string{"server", "httpapi", "history", "cluster", "webhook", "cmd/pushwire"},
		why: "channels is the core; it receives storage, brokers and transports through its own interfaces"},
	{pkg: "server", deny: []string{"httpapi", "cmd/pushwire"}, why: "server and httpapi are sibling adapters around channels"},
	{pkg: "httpapi", deny: []string{"server", "cmd/pushwire"}, why: "server and httpapi are sibling adapters around channels"},
	{pkg: "cluster", deny: []string{"server", "httpapi", "history", "webhook", "cmd/pushwire"},
		why: "cluster is a broker implementation below channels; only cmd/pushwire wires it in"},
	{pkg: "console", deny: []string{"server", "httpapi", "webhook", "history", "cluster", "cmd/pushwire"},
		why: "the console is a sibling adapter around channels: it reads the hub and is told through channels.Tap; only cmd/pushwire wires it to the others"},
	{pkg: "metrics", onlyOf: []string{}, why: "metrics imports nothing of ours: its consumers declare the interfaces it implements"},
	{pkg: "history", deny: []string{"server", "httpapi", "cluster", "webhook", "cmd/pushwire"},
		why: "history is a storage implementation below channels; only cmd/pushwire wires it in"},
	{pkg: "push", onlyOf: []string{"config", "protocol", "internal/pgmigrate"},
		why: "push knows nothing of sockets, channels or the HTTP layer: it gets liveness through its Presence interface"},
	{pkg: "push/pushtest", onlyOf: []string{"push", "config", "protocol", "internal/pgmigrate"},
		why: "pushtest is push's conformance suite and provider fakes"},
	{pkg: "internal/bytebudget", onlyOf: []string{}, why: "bytebudget is a counter shared by the transports and the HTTP layer; it imports nothing of ours"},
	{pkg: "internal/pgmigrate", onlyOf: []string{}, why: "pgmigrate applies embedded SQL migrations; it imports nothing of ours"},
}

func TestImportRules(t *testing.T) {
	cmd := exec.Command("go", "list", "-e", "-json", "./...")
	cmd.Dir = testkit.RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs[strings.TrimPrefix(p.ImportPath, mod)] = p
	}
	if len(pkgs) == 0 {
		t.Fatal("go list returned no packages")
	}
	for _, r := range rules {
		p, ok := pkgs[r.pkg]
		if !ok {
			t.Errorf("package %s not found", r.pkg)
			continue
		}
		for _, d := range p.Deps {
			rel, ours := strings.CutPrefix(d, mod)
			if !ours {
				continue
			}
			for _, bad := range r.deny {
				if rel == bad || strings.HasPrefix(rel, bad+"/") {
					t.Errorf("%s depends on %s: %s", r.pkg, rel, r.why)
				}
			}
			if r.onlyOf != nil && !contains(r.onlyOf, rel) {
				t.Errorf("%s depends on %s: %s", r.pkg, rel, r.why)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
