// Package clustertest is the conformance suite for replication.Broker implementations (the
// cluster package's Local, Redis and NATS): run it from each implementation's tests.
package clustertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushwire/pushwire/cluster"
	"github.com/pushwire/pushwire/internal/testkit"
	"github.com/pushwire/pushwire/replication"
)

// Timeouts of the suite: how long a delivery may take, and how long to keep watching for
// envelopes that must not arrive.
const (
	deliverTimeout = 20 * time.Second
	settle         = 300 * time.Millisecond
)

var (
	runID     = newRunID()
	clusterMu sync.Mutex
	clusters  = map[string]string{}
)

func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}

// ClusterID returns an id for t's cluster: the same for every call with the same test, and
// different for every other test of this process and (with high probability) of every other
// process. It consists of ASCII letters and digits only, so it fits in a Redis channel
// prefix, a NATS subject token or a map key.
func ClusterID(t testing.TB) string {
	clusterMu.Lock()
	defer clusterMu.Unlock()
	id, ok := clusters[t.Name()]
	if !ok {
		id = fmt.Sprintf("c%s%d", runID, len(clusters))
		clusters[t.Name()] = id
	}
	return id
}

// Run runs the suite. Each call of newNode(t) must return a new node, not yet started, of
// t's cluster: all nodes made with one t see each other, and nodes made with different t's
// (the suite's subtests run in parallel) never do — ClusterID helps. Run closes every node
// when its test ends, after the test may already have closed it, so Close must be
// idempotent.
func Run(t *testing.T, newNode func(t *testing.T) replication.Broker) {
	s := suite{newNode: newNode}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"NodeIDs", s.nodeIDs},
		{"Healthy", s.healthy},
		{"FanOutExactlyOnceNeverSelf", s.fanOut},
		{"OrderPerSender", s.order},
		{"AppIsolation", s.appIsolation},
		{"BinarySafe", s.binarySafe},
		{"Close", s.close},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t)
		})
	}
}

type suite struct {
	newNode func(t *testing.T) replication.Broker
}

// node makes a node of t's cluster, closed when t ends.
func (s suite) node(t *testing.T) replication.Broker {
	t.Helper()
	b := s.newNode(t)
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// started makes and starts n nodes, waits until all are healthy, and returns them with
// their recorders.
func (s suite) started(t *testing.T, n int) ([]replication.Broker, []*Recorder) {
	t.Helper()
	nodes := make([]replication.Broker, n)
	recs := make([]*Recorder, n)
	for i := range nodes {
		nodes[i] = s.node(t)
		recs[i] = NewRecorder(t)
		if err := nodes[i].Start(testkit.Context(t, deliverTimeout), recs[i].Handle); err != nil {
			t.Fatalf("node %d: Start: %v", i, err)
		}
	}
	for i, b := range nodes {
		testkit.WaitFor(t, deliverTimeout, fmt.Sprintf("node %d healthy after Start", i), b.Healthy)
	}
	return nodes, recs
}

// Delivery is one envelope handed to a handler.
type Delivery struct {
	App, From string
	Env       []byte
}

// Recorder is a handler that keeps what it is given, failing the test if it is ever called
// concurrently with itself.
type Recorder struct {
	t      testing.TB
	inside atomic.Int32
	mu     sync.Mutex
	got    []Delivery
}

// NewRecorder returns an empty recorder reporting to t.
func NewRecorder(t testing.TB) *Recorder { return &Recorder{t: t} }

// Handle records one delivery; pass it to Start.
func (r *Recorder) Handle(appID, fromNode string, env []byte) {
	if r.inside.Add(1) != 1 {
		r.t.Errorf("handler called concurrently")
	}
	r.mu.Lock()
	r.got = append(r.got, Delivery{appID, fromNode, env}) // kept as given: env is the handler's
	r.mu.Unlock()
	r.inside.Add(-1)
}

// Len returns how many deliveries were recorded.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// Got returns a copy of the deliveries so far.
func (r *Recorder) Got() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.got...)
}

// WaitLen waits until at least n deliveries were recorded.
func (r *Recorder) WaitLen(t testing.TB, n int) {
	t.Helper()
	testkit.WaitFor(t, deliverTimeout, fmt.Sprintf("%d deliveries (have %d)", n, r.Len()), func() bool { return r.Len() >= n })
}

func publish(t *testing.T, b replication.Broker, app string, env []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Publish(ctx, app, env); err != nil {
		t.Fatalf("node %s: Publish(%q, %d bytes): %v", b.NodeID(), app, len(env), err)
	}
}

func (s suite) nodeIDs(t *testing.T) {
	a, b := s.node(t), s.node(t)
	if a.NodeID() == "" || b.NodeID() == "" || a.NodeID() == b.NodeID() {
		t.Fatalf("node ids %q and %q: want two distinct non-empty ids", a.NodeID(), b.NodeID())
	}
}

func (s suite) healthy(t *testing.T) {
	nodes, _ := s.started(t, 2) // waits for Healthy
	if err := nodes[0].Start(testkit.Context(t, deliverTimeout), func(string, string, []byte) {}); err == nil {
		t.Errorf("second Start succeeded; want an error")
	}
	nodes[1].Close()
	if nodes[1].Healthy() {
		t.Errorf("Healthy after Close")
	}
	if !nodes[0].Healthy() {
		t.Errorf("node 0 unhealthy after node 1 closed")
	}
}

// fanOut: every node publishes; every other node gets each envelope exactly once, with the
// right app and sender, and no node gets its own.
func (s suite) fanOut(t *testing.T) {
	const perNode = 10
	nodes, recs := s.started(t, 3)
	for i, b := range nodes {
		for j := range perNode {
			publish(t, b, "app-1", fmt.Appendf(nil, "%d:%d", i, j))
		}
	}
	for _, r := range recs {
		r.WaitLen(t, 2*perNode)
	}
	time.Sleep(settle)
	for i, r := range recs {
		got := r.Got()
		if len(got) != 2*perNode {
			t.Errorf("node %d: %d deliveries, want %d", i, len(got), 2*perNode)
		}
		seen := map[string]bool{}
		for _, d := range got {
			from, _, _ := strings.Cut(string(d.Env), ":")
			k, _ := strconv.Atoi(from)
			switch {
			case k == i || d.From == nodes[i].NodeID():
				t.Errorf("node %d: got its own envelope %q (from %q)", i, d.Env, d.From)
			case d.From != nodes[k].NodeID():
				t.Errorf("node %d: envelope %q from %q, want from %q", i, d.Env, d.From, nodes[k].NodeID())
			case d.App != "app-1":
				t.Errorf("node %d: envelope %q for app %q, want app-1", i, d.Env, d.App)
			case seen[string(d.Env)]:
				t.Errorf("node %d: envelope %q delivered twice", i, d.Env)
			}
			seen[string(d.Env)] = true
		}
	}
}

// order: two nodes publish 1,000 envelopes each in a burst, at the same time; a third gets
// each sender's envelopes in publish order.
func (s suite) order(t *testing.T) {
	const n = 1000
	nodes, recs := s.started(t, 3)
	var wg sync.WaitGroup
	for _, i := range []int{0, 2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := testkit.Context(t, deliverTimeout)
			for j := range n {
				if err := nodes[i].Publish(ctx, "app-1", fmt.Appendf(nil, "%d", j)); err != nil {
					t.Errorf("node %d: Publish %d: %v", i, j, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	recs[1].WaitLen(t, 2*n)
	next := map[string]int{}
	for _, d := range recs[1].Got() {
		j, err := strconv.Atoi(string(d.Env))
		if err != nil {
			t.Fatalf("bad envelope %q", d.Env)
		}
		if j != next[d.From] {
			t.Fatalf("from %s: got envelope %d, want %d", d.From, j, next[d.From])
		}
		next[d.From]++
	}
	if next[nodes[0].NodeID()] != n || next[nodes[2].NodeID()] != n {
		t.Fatalf("per-sender counts %v, want %d each", next, n)
	}
}

// appIsolation: envelopes keep their app, for app ids of any shape; the empty app id is
// refused.
func (s suite) appIsolation(t *testing.T) {
	apps := []string{"app-1", "app-2", "123456", "a.b", "a:b", "with space", "*", ">", "a*b?[c]",
		"~tilde", "ünïcødé", "pushwire:app-1", "pushwire.app-1", strings.Repeat("x", 200)}
	const rounds = 5
	nodes, recs := s.started(t, 2)
	for j := range rounds {
		for _, app := range apps {
			publish(t, nodes[0], app, fmt.Appendf(nil, "%s|%d", app, j))
		}
	}
	recs[1].WaitLen(t, rounds*len(apps))
	time.Sleep(settle)
	got := recs[1].Got()
	if len(got) != rounds*len(apps) {
		t.Fatalf("%d deliveries, want %d", len(got), rounds*len(apps))
	}
	next := map[string]int{}
	for _, d := range got {
		if want := fmt.Sprintf("%s|%d", d.App, next[d.App]); string(d.Env) != want {
			t.Errorf("app %q: got %q, want %q", d.App, d.Env, want)
		}
		next[d.App]++
	}
	if err := nodes[0].Publish(testkit.Context(t, deliverTimeout), "", []byte("x")); err == nil {
		t.Errorf("Publish with an empty app id succeeded; want an error")
	}
}

// binarySafe: every byte value, the empty envelope and 1 MiB of random bytes arrive intact,
// and the publisher may reuse its buffer once Publish returns.
func (s suite) binarySafe(t *testing.T) {
	all := make([]byte, 256*4)
	for i := range all {
		all[i] = byte(i)
	}
	big := make([]byte, 1<<20)
	_, _ = rand.Read(big)
	bigger := make([]byte, 3<<20+17)
	_, _ = rand.Read(bigger)
	envs := [][]byte{all, {}, {0}, {0xff, 0, '\r', '\n'}, big, all, bigger}
	nodes, recs := s.started(t, 2)
	for _, env := range envs {
		buf := append([]byte(nil), env...)
		publish(t, nodes[0], "app-1", buf)
		for i := range buf {
			buf[i] ^= 0x5a
		}
	}
	recs[1].WaitLen(t, len(envs))
	time.Sleep(settle)
	got := recs[1].Got()
	if len(got) != len(envs) {
		t.Fatalf("%d deliveries, want %d", len(got), len(envs))
	}
	for i, d := range got {
		if !bytes.Equal(d.Env, envs[i]) {
			t.Errorf("envelope %d: got %d bytes, want %d bytes (%s)", i, len(d.Env), len(envs[i]), firstDiff(d.Env, envs[i]))
		}
	}
}

func firstDiff(a, b []byte) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("first difference at byte %d: %#x vs %#x", i, a[i], b[i])
		}
	}
	return "one is a prefix of the other"
}

// close: Close while envelopes stream in stops delivery at once; the closed node's Publish
// and Start fail with cluster.ErrClosed; the other nodes carry on.
func (s suite) close(t *testing.T) {
	nodes, recs := s.started(t, 3)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for j := 0; ; j++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := nodes[0].Publish(ctx, "app-1", fmt.Appendf(nil, "%d", j))
			cancel()
			if err != nil {
				t.Errorf("Publish %d: %v", j, err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	recs[1].WaitLen(t, 20)
	if err := nodes[1].Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	after := recs[1].Len()
	if nodes[1].Healthy() {
		t.Errorf("Healthy after Close")
	}
	if err := nodes[1].Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	err := nodes[1].Publish(testkit.Context(t, deliverTimeout), "app-1", []byte("late"))
	if !errors.Is(err, cluster.ErrClosed) {
		t.Errorf("Publish after Close: %v, want cluster.ErrClosed", err)
	}
	err = nodes[1].Start(testkit.Context(t, deliverTimeout), func(string, string, []byte) {})
	if err == nil {
		t.Errorf("Start after Close succeeded; want an error")
	}
	n := recs[2].Len()
	recs[2].WaitLen(t, n+20) // the others still deliver
	time.Sleep(settle)
	if recs[1].Len() != after {
		t.Errorf("closed node got %d envelopes after Close returned", recs[1].Len()-after)
	}
}
