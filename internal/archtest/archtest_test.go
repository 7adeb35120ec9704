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

// impls are the concrete implementations of interfaces that consumers define: only
// cmd/pushwire (and tests, benchmarks and conformance suites) may know them. replication
// implements channels.Cluster; the brokers of cluster implement replication.Broker, so they
// (and their conformance suite) are the one other place that imports it.
var impls = []string{"history", "cluster", "replication", "webhook", "server", "httpapi", "console", "push", "metrics"}

var rules = []rule{
	{pkg: "protocol", onlyOf: []string{"protocol/wirepb"}, why: "protocol is the pure wire layer at the bottom: it imports nothing of ours but its generated protobuf schema"},
	{pkg: "protocol/wirepb", onlyOf: []string{}, why: "wirepb is generated protobuf code; it imports nothing of ours"},
	{pkg: "config", onlyOf: []string{"protocol", "protocol/wirepb"}, why: "config is plain values; it may only use protocol"},
	{pkg: "delta", onlyOf: []string{"protocol", "protocol/wirepb"}, why: "delta is pure codecs; it may only use protocol"},
	{pkg: "delta/deltatest", onlyOf: []string{"delta", "protocol", "protocol/wirepb"}, why: "deltatest checks codecs against each other; it needs nothing but them"},
	{pkg: "server/wsframe", onlyOf: []string{}, why: "wsframe is the pure WebSocket frame codec; it imports nothing of ours"},
	{pkg: "channels", onlyOf: []string{"config", "protocol", "protocol/wirepb"},
		why: "channels is the core; it receives storage, the cluster (replication, through Cluster and LocalNode), transports and every other implementation through its own interfaces"},
	{pkg: "channels/channelstest", onlyOf: []string{"channels", "config", "protocol", "protocol/wirepb"},
		why: "channelstest holds in-memory fakes of channels' interfaces; it must not pull in a real implementation"},
	{pkg: "presencehistory", onlyOf: []string{"channels", "config", "protocol", "protocol/wirepb"},
		why: "presencehistory is a feature beside the core: it is told membership changes through channels.PresenceRecorder (the seam channels declares), stores them through its own Store interface, and knows no store, transport or HTTP; channels never imports it, only cmd/pushwire wires it in, httpapi serves its reads and history implements its Store"},
	{pkg: "annotations", onlyOf: []string{"channels", "config", "protocol", "protocol/wirepb"},
		why: "annotations is a feature beside the core: the hub calls it through channels.AnnotationFeature and it acts on the hub only through the channels.AnnotationNode AttachAnnotations hands it; it stores through its own Store interface and knows no store, transport or HTTP; channels never imports it, only cmd/pushwire wires it in, httpapi serves it, history implements its Store and webhook its Observer"},
	{pkg: "channels/hubtest", onlyOf: []string{"channels", "channels/channelstest", "config", "protocol", "protocol/wirepb"},
		why: "hubtest drives a hub of the default app for the tests of the packages built on channels; it must not pull in a real implementation"},
	{pkg: "server", deny: append([]string{"cmd/pushwire", "presencehistory", "annotations"}, without(impls, "server")...), why: "server is an adapter around channels; it never talks to httpapi, and only cmd/pushwire knows concrete implementations"},
	{pkg: "httpapi", deny: []string{"server", "history", "cluster", "replication", "webhook", "console", "metrics", "cmd/pushwire"}, why: "httpapi is an adapter around channels (and push's service); it never talks to server, and only cmd/pushwire knows concrete implementations"},
	{pkg: "replication", onlyOf: []string{"channels", "config", "protocol", "protocol/wirepb"},
		why: "replication is the node-to-node protocol: it implements channels.Cluster, acts on the hub only through channels.LocalNode, and reaches other nodes only through its own Broker interface; it knows no broker, store or transport, and only cmd/pushwire wires it in"},
	{pkg: "replication/replicationtest", onlyOf: []string{"replication", "channels", "config", "protocol", "protocol/wirepb", "internal/testkit"},
		why: "replicationtest is an in-process fake broker network for tests of clustered hubs; it must not pull in a real broker"},
	{pkg: "cluster", deny: append([]string{"cmd/pushwire"}, without(without(impls, "cluster"), "replication")...),
		why: "cluster is a broker implementation below replication (it implements replication.Broker, the interface its consumer declares); only cmd/pushwire wires it in"},
	{pkg: "cluster/clustertest", deny: []string{"server", "httpapi", "history", "webhook", "console", "push", "cmd/pushwire"},
		why: "clustertest is the brokers' conformance suite; it uses the hub, replication and brokers only"},
	{pkg: "console", deny: append([]string{"cmd/pushwire"}, without(impls, "console")...),
		why: "the console is a sibling adapter around channels: it reads the hub and is told through channels.Tap; only cmd/pushwire wires it to the others"},
	{pkg: "webhook", deny: append([]string{"cmd/pushwire"}, without(impls, "webhook")...),
		why: "webhook is an implementation of channels' event sink; only cmd/pushwire wires it in"},
	{pkg: "metrics", onlyOf: []string{}, why: "metrics imports nothing of ours: its consumers declare the interfaces it implements"},
	{pkg: "history", deny: append([]string{"cmd/pushwire"}, without(impls, "history")...),
		why: "history is a storage implementation below channels; only cmd/pushwire wires it in"},
	{pkg: "history/historytest", deny: []string{"server", "httpapi", "cluster", "webhook", "console", "push", "cmd/pushwire"},
		why: "historytest is the stores' conformance suite; it speaks channels' interfaces only"},
	{pkg: "push", onlyOf: []string{"config", "protocol", "internal/pgmigrate"},
		why: "push knows nothing of sockets, channels or the HTTP layer: it gets liveness through its Presence interface"},
	{pkg: "push/pushtest", onlyOf: []string{"push", "config", "protocol", "internal/pgmigrate"},
		why: "pushtest is push's conformance suite and provider fakes"},
	{pkg: "internal/pgmigrate", onlyOf: []string{}, why: "pgmigrate applies embedded SQL migrations; it imports nothing of ours"},
	{pkg: "internal/bytebudget", onlyOf: []string{}, why: "bytebudget is a counter shared by the transports and the HTTP layer; it imports nothing of ours"},
	{pkg: "internal/testkit", onlyOf: []string{}, why: "testkit starts services and builds the binary for tests; importing product code would tie every test to it"},
	{pkg: "internal/archtest", onlyOf: []string{"internal/testkit"}, why: "archtest reads the import graph with go list; it needs no product code"},
	{pkg: "cmd/pushwire", why: "cmd/pushwire is the wiring: the one place that knows every concrete implementation"},
	{pkg: "bench/load", onlyOf: []string{"protocol", "protocol/wirepb", "delta"}, why: "the load tool is a client: it speaks the wire protocol (and decodes deltas with the pure codecs, as a client does) and must not lean on the server's internals"},
	{pkg: "bench/cmd/pwload", onlyOf: []string{"bench/load", "protocol", "protocol/wirepb", "delta"}, why: "pwload is the load tool's command line"},
	{pkg: "bench/cmd/pwserve", deny: []string{"cmd/pushwire", "integration", "sdkcompat"}, why: "pwserve is a benchmark wiring of the server, like cmd/pushwire; it must not import other commands or test suites"},
	{pkg: "integration", deny: []string{"cmd/pushwire"}, why: "integration tests drive the real binary over the network, not its main package"},
	{pkg: "integration/image", deny: []string{"cmd/pushwire"}, why: "the image test runs the built container, not the main package"},
	{pkg: "sdkcompat", deny: []string{"cmd/pushwire"}, why: "sdkcompat runs real third-party SDKs against the real binary"},
}

// without returns list minus s.
func without(list []string, s string) []string {
	var out []string
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
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
	ruled := map[string]bool{}
	for _, r := range rules {
		ruled[r.pkg] = true
	}
	for name := range pkgs {
		if !ruled[name] {
			t.Errorf("package %s has no rule: add one to internal/archtest saying what it may import and why", name)
		}
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
