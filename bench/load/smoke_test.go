package load

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pushwire/pushwire/internal/testkit"
)

// TestSmoke runs the load tool for a few seconds against a pushwire binary it starts: a
// fan-out over the HTTP API with subscribers split over two worker processes, a presence
// join and a client-event chat. It checks counts (every connection, every delivery, every
// member), never timings.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	srv := testkit.Start(t, testkit.Options{Port: -1, Args: []string{"--log-level=warn"}})
	pid, err := listenerPID(srv.Port)
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"--port", strconv.Itoa(srv.Port), "--label", "pushwire", "--pid", strconv.Itoa(pid), "--settle", "0s", "--drain", "20s"}
	run := func(t *testing.T, args ...string) *Report {
		t.Helper()
		jsonFile := filepath.Join(t.TempDir(), "report.json")
		var out, errOut bytes.Buffer
		code := Main(append(append(append([]string{}, base...), "--json-file", jsonFile), args...), &out, &errOut)
		t.Logf("pwload %v exited %d\n%s\n%s", args, code, errOut.String(), out.String())
		if code != 0 {
			t.Fatalf("pwload exited %d", code)
		}
		b, err := os.ReadFile(jsonFile)
		if err != nil {
			t.Fatal(err)
		}
		rep := &Report{}
		if err := json.Unmarshal(b, rep); err != nil {
			t.Fatal(err)
		}
		if rep.Connect.Connected != rep.Settings.Subscribers || rep.Connect.ConnectErrors != 0 || rep.Connect.SubscribeErrors != 0 {
			t.Errorf("connect: %+v", rep.Connect)
		}
		if rep.Disconnects != 0 || rep.ServerErrors != 0 {
			t.Errorf("%d disconnects %v, %d server errors: %v", rep.Disconnects, rep.CloseCodes, rep.ServerErrors, rep.Errors)
		}
		if rep.Memory == nil || rep.Memory.AfterKB <= 0 {
			t.Errorf("no RSS reading: %+v", rep.Memory)
		}
		return rep
	}

	t.Run("fanout-two-processes", func(t *testing.T) {
		rep := run(t, "--n", "60", "--max-conns-per-proc", "30", "--layout", "own+shared", "--shared-every", "3",
			"--rate", "30", "--duration", "1500ms", "--publishers", "2")
		if rep.Settings.Processes != 3 {
			t.Errorf("processes = %d, want 2 workers + this one", rep.Settings.Processes)
		}
		checkPhases(t, rep)
	})
	t.Run("presence", func(t *testing.T) {
		rep := run(t, "--scenario", "presence-storm", "--n", "40", "--connect-rate", "200")
		p := rep.Presence
		if p == nil || p.Members != 40 || p.Known != 40*39 || p.Lost != 0 || p.MemberRemoved != 0 {
			t.Errorf("presence: %+v", p)
		}
		if p != nil && p.MemberAdded != 40*39/2 {
			t.Errorf("member_added = %d, want %d (each join seen by the earlier members)", p.MemberAdded, 40*39/2)
		}
	})
	t.Run("chat", func(t *testing.T) {
		rep := run(t, "--scenario", "chat", "--n", "16", "--rate", "4", "--duration", "1s")
		checkPhases(t, rep)
	})
}

func checkPhases(t *testing.T, rep *Report) {
	t.Helper()
	if len(rep.Phases) == 0 {
		t.Fatal("no phase ran")
	}
	for _, p := range rep.Phases {
		if p.Published == 0 || p.Expected == 0 || p.Received != p.Expected || p.PublishErrors != 0 {
			t.Errorf("phase %d: published %d (errors %d), expected %d, received %d", p.Phase, p.Published, p.PublishErrors, p.Expected, p.Received)
		}
		if p.Latency.Count != uint64(p.Received) {
			t.Errorf("phase %d: %d latencies for %d deliveries", p.Phase, p.Latency.Count, p.Received)
		}
	}
}

// listenerPID finds the process listening on a local TCP port (testkit does not expose it):
// the socket's inode in /proc/net/tcp, then the process holding that inode.
func listenerPID(port int) (int, error) {
	tcp, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, err
	}
	want := fmt.Sprintf(":%04X", port)
	inode := ""
	for _, line := range strings.Split(string(tcp), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && strings.HasSuffix(f[1], want) && f[3] == "0A" { // LISTEN
			inode = f[9]
			break
		}
	}
	if inode == "" {
		return 0, fmt.Errorf("no listener on port %d", port)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range procs {
		if l, err := os.Readlink(fd); err == nil && l == "socket:["+inode+"]" {
			return strconv.Atoi(strings.Split(fd, "/")[2])
		}
	}
	return 0, fmt.Errorf("no process holds the listener on port %d", port)
}
