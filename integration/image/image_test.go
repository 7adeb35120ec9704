// Package image builds the container image (make image's script) and proves it runs: its own
// package, so the image build gets its own test timeout beside the long integration suite.
package image

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/internal/testkit"
)

// containerEngine returns podman or docker, whichever can run containers here, or why
// neither can.
// deployConfigPath is where the image expects its config (as in docker-compose.yml).
const deployConfigPath = "/etc/pushwire/pushwire.yaml"

func containerEngine() (string, string) {
	var why []string
	for _, e := range []string{"podman", "docker"} {
		if _, err := exec.LookPath(e); err != nil {
			why = append(why, e+" is not installed")
			continue
		}
		out, err := exec.Command(e, "info").CombinedOutput()
		if err != nil {
			why = append(why, fmt.Sprintf("%s info failed (%v): %s", e, err, strings.TrimSpace(tailLines(string(out), 2))))
			continue
		}
		return e, ""
	}
	return "", strings.Join(why, "; ")
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestContainerImage builds the image with `make image`'s script (FROM scratch, the static
// binary, no registry pull), checks it runs as a non-root user, runs it with a mounted
// config, and has pusher-js (sdkcompat's) connect through it and receive an event the
// official `pusher` server SDK publishes. Skipped only when neither podman nor docker can
// run containers.
func TestContainerImage(t *testing.T) {
	t.Parallel() // its image build overlaps the other tests
	engine, why := containerEngine()
	if engine == "" {
		t.Skipf("no container engine can run containers here: %s (make deps installs podman as root on Debian)", why)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is required (pusher-js connects through the container)")
	}
	modules := filepath.Join(testkit.RepoRoot(), "sdkcompat", "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "pusher-js")); err != nil {
		t.Fatalf("sdkcompat/node_modules has no pusher-js (run make deps): %v", err)
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	id := hex.EncodeToString(suffix)
	image := "localhost/pushwire:it-" + id
	run := func(timeout time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, engine, args...).CombinedOutput()
		return string(out), err
	}

	build := exec.Command("./scripts/image.sh")
	build.Dir = testkit.RepoRoot()
	build.Env = append(os.Environ(), "IMAGE="+image, "ENGINE="+engine)
	out, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/image.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = run(time.Minute, "rmi", "-f", image) })
	t.Logf("%s", strings.TrimSpace(string(out)))
	if user, err := run(time.Minute, "image", "inspect", "--format", "{{.Config.User}}", image); err != nil || strings.TrimSpace(user) != "65532:65532" {
		t.Errorf("image user = %q (%v), want 65532:65532", strings.TrimSpace(user), err)
	}

	ports := testkit.FreePorts(t, 2)
	port, metricsPort := ports[0], ports[1]
	const secret = "image-test-secret"
	cfg := fmt.Sprintf(`host: 127.0.0.1
port: %d
metrics_host: 127.0.0.1
metrics_port: %d
log_format: json
drain_delay: 0s
apps:
  - id: app-id
    key: app-key
    secret: ${IMAGE_TEST_SECRET}
`, port, metricsPort)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "pushwire.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil { // readable by uid 65532
		t.Fatal(err)
	}
	name := "pushwire-it-" + id
	args := []string{"run", "-d", "--name", name, "--network", "host", "-e", "IMAGE_TEST_SECRET=" + secret,
		"-v", cfgPath + ":" + deployConfigPath + ":ro"}
	if engine == "podman" {
		// Podman's default limits (the host's own, raised) are refused on this kind of machine:
		// runc may not set a file limit above the 20000 a process here has, nor (measured) a
		// process limit above 32768.
		args = append(args, "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768")
	}
	args = append(args, image, "--config="+deployConfigPath)
	if out, err := run(2*time.Minute, args...); err != nil {
		t.Fatalf("%s run: %v\n%s", engine, err, out)
	}
	t.Cleanup(func() {
		_, _ = run(time.Minute, "rm", "-f", name)
	})
	logs := func() string { out, _ := run(time.Minute, "logs", name); return out }
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	testkit.WaitFor(t, 30*time.Second, "pushwire in the container answers /up", func() bool {
		resp, err := http.Get(base + "/up")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := exec.CommandContext(ctx, node, filepath.Join(testkit.RepoRoot(), "integration", "image", "testdata", "image-client.js"))
	client.Env = append(os.Environ(), "NODE_PATH="+modules, "PUSHWIRE_HOST=127.0.0.1", "PUSHWIRE_PORT="+strconv.Itoa(port),
		"APP_SECRET="+secret, "CHANNEL=image-check-"+id)
	out, err = client.CombinedOutput()
	if err != nil {
		t.Fatalf("pusher-js through the container: %v\n%s\ncontainer log:\n%s", err, out, logs())
	}
	t.Logf("pusher-js: %s", strings.TrimSpace(string(out)))

	// A graceful stop: SIGTERM, exit 0 within the shutdown timeout.
	if out, err := run(time.Minute, "stop", "-t", "20", name); err != nil {
		t.Fatalf("%s stop: %v\n%s", engine, err, out)
	}
	if code, _ := run(time.Minute, "inspect", "--format", "{{.State.ExitCode}}", name); strings.TrimSpace(code) != "0" {
		t.Errorf("container exit code %q after stop, want 0; log:\n%s", strings.TrimSpace(code), logs())
	}
	if l := logs(); !strings.Contains(l, `"msg":"stopped"`) {
		t.Errorf("container log lacks the graceful stop:\n%s", l)
	}
}
