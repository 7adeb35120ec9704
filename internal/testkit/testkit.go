package testkit

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultPort is the port the Pusher-compatible test suites expect the server on.
const DefaultPort = 6001

// App credentials of the embedded default app.
const (
	AppID     = "app-id"
	AppKey    = "app-key"
	AppSecret = "app-secret"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Binary builds cmd/pushwire once per test process (with -race when the tests run with it)
// and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pushwire-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "pushwire")
		args := []string{"build", "-o", binPath}
		if RaceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/pushwire")
		cmd := exec.Command("go", args...)
		cmd.Dir = RepoRoot()
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("testkit: %v", buildErr)
	}
	return binPath
}

// Options say how to start a server. The zero value runs the default app on 127.0.0.1:6001.
type Options struct {
	// Port to listen on: 0 means DefaultPort (6001), -1 means a free port.
	Port int
	// Args are extra command-line flags, e.g. "--activity-timeout=1s".
	Args []string
	// Env are extra KEY=VALUE environment variables.
	Env []string
	// Config, when set, is written to a YAML file passed with --config.
	Config string
	// TLS serves wss:// and https:// with a fresh self-signed certificate for 127.0.0.1 and
	// localhost (see Server.CertPEM).
	TLS bool
}

// Server is a running pushwire process.
type Server struct {
	// Addr is host:port, e.g. "127.0.0.1:6001".
	Addr string
	// Port is the TCP port.
	Port int

	// MetricsAddr is host:port of the metrics listener (GET /metrics).
	MetricsAddr string
	// CertPEM is the server's self-signed certificate when started with TLS.
	CertPEM []byte

	tls    bool
	stopMu sync.Mutex
	cmd    *exec.Cmd
	out    *syncBuffer
	unlock func()
	done   chan struct{}
	t      testing.TB
}

// WSURL returns the WebSocket URL of an app key with Pusher's query string.
func (s *Server) WSURL(key string) string {
	scheme := "ws://"
	if s.tls {
		scheme = "wss://"
	}
	return scheme + s.Addr + "/app/" + key + "?protocol=7&client=js&version=8.6.0&flash=false"
}

// HTTPURL returns the base URL of the REST API.
func (s *Server) HTTPURL() string {
	if s.tls {
		return "https://" + s.Addr
	}
	return "http://" + s.Addr
}

// HTTPClient returns a client that trusts the server's certificate (plain client without TLS).
func (s *Server) HTTPClient() *http.Client {
	if !s.tls {
		return http.DefaultClient
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CertPEM)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// Output returns everything the server wrote to stdout and stderr so far.
func (s *Server) Output() string { return s.out.String() }

// Start runs a pushwire server and stops it when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	bin := Binary(t)
	port := o.Port
	unlock := func() {}
	switch port {
	case 0:
		port = DefaultPort
		unlock = lockPort(t, port)
	}
	var metricsPort int
	if port == -1 {
		ps := FreePorts(t, 2)
		port, metricsPort = ps[0], ps[1]
	} else {
		metricsPort = FreePort(t)
	}
	args := []string{"--host=127.0.0.1", "--port=" + strconv.Itoa(port), "--log-level=debug",
		"--metrics-host=127.0.0.1", "--metrics-port=" + strconv.Itoa(metricsPort)}
	if o.Config != "" {
		f := filepath.Join(t.TempDir(), "pushwire.yaml")
		if err := os.WriteFile(f, []byte(o.Config), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config="+f)
	}
	var certPEM []byte
	if o.TLS {
		dir := t.TempDir()
		var keyPEM []byte
		certPEM, keyPEM = SelfSignedCert(t)
		certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--tls-cert-file="+certFile, "--tls-key-file="+keyFile)
	}
	args = append(args, o.Args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), o.Env...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		unlock()
		t.Fatalf("testkit: start pushwire: %v", err)
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Port: port, MetricsAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(metricsPort)), CertPEM: certPEM, tls: o.TLS, cmd: cmd, out: out, unlock: unlock, done: make(chan struct{}), t: t}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(s.Stop)
	s.waitReady(t)
	return s
}

func (s *Server) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			t.Fatalf("testkit: pushwire exited during start-up:\n%s", s.Output())
		default:
		}
		resp, err := s.HTTPClient().Get(s.HTTPURL() + "/up")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("testkit: pushwire not ready on %s after 30s:\n%s", s.Addr, s.Output())
}

// Stop sends SIGTERM, waits for a graceful exit and fails the test on a data race, a panic
// or a hang. It is safe to call more than once, also concurrently.
func (s *Server) Stop() {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
			s.t.Errorf("testkit: pushwire did not stop within 20s of SIGTERM:\n%s", s.Output())
		}
	}
	s.unlock()
	s.unlock = func() {}
	out := s.Output()
	if strings.Contains(out, "WARNING: DATA RACE") || strings.Contains(out, "panic:") {
		s.t.Errorf("testkit: pushwire reported a data race or panic:\n%s", out)
	}
}

// lockPort serialises use of a fixed port across test processes (go test runs packages in
// parallel) with an exclusive flock on a file in the temp dir.
func lockPort(t testing.TB, port int) func() {
	t.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("pushwire-test-port-%d.lock", port))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("testkit: lock %s: %v", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("testkit: flock %s: %v", path, err)
	}
	// The lock is ours; if something else (e.g. `make run`) holds the port, say so.
	if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err != nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		t.Fatalf("testkit: port %d is in use by another process (stop `make run`?): %v", port, err)
	} else {
		ln.Close()
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}
}

// WaitFor polls cond every 10ms until it returns true or timeout passes, then fails.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("testkit: timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Context returns a context that ends with the test or after timeout.
func Context(t testing.TB, timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// SelfSignedCert makes a PEM certificate and key for 127.0.0.1 and localhost, valid for a day.
func SelfSignedCert(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "pushwire test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}
