package sdkcompat

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pushwire/pushwire/internal/testkit"
)

// TestPusherJSForceTLS: pusher-js with forceTLS: true connects over wss:// to pushwire serving
// a self-signed certificate made here, and the pusher SDK publishes over https://.
func TestPusherJSForceTLS(t *testing.T) {
	t.Parallel()
	dir := sdkDir(t)
	node := requireNode(t)
	ensureNodeModules(t, dir)
	srv := testkit.Start(t, testkit.Options{Port: -1, TLS: true})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, srv.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", "tls/forcetls.test.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PUSHWIRE_HOST=127.0.0.1", "PUSHWIRE_TLS_PORT="+strconv.Itoa(srv.Port),
		"NODE_EXTRA_CA_CERTS="+ca, "NO_COLOR=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	if err := runStreaming(t, cmd, "node-tls"); err != nil {
		t.Logf("pushwire log:\n%s", tail(srv.Output(), 60))
		t.Fatalf("pusher-js over wss failed: %v", err)
	}
}
