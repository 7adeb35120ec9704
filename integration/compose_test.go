package integration

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/internal/testkit"
)

// The container layout shared by Dockerfile, docker-compose.yml and deploy/pushwire.yaml.
const (
	deployConfigPath = "/etc/pushwire/pushwire.yaml"
	containerPort    = "6001"
	containerMetrics = "9601"
)

// composeFile is the part of docker-compose.yml these tests check.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Build           any                          `yaml:"build"`
	Image           string                       `yaml:"image"`
	Command         []string                     `yaml:"command"`
	Environment     map[string]string            `yaml:"environment"`
	Volumes         []string                     `yaml:"volumes"`
	Ports           []string                     `yaml:"ports"`
	DependsOn       map[string]map[string]string `yaml:"depends_on"`
	Healthcheck     *struct{ Test []string }     `yaml:"healthcheck"`
	StopGracePeriod string                       `yaml:"stop_grace_period"`
}

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testkit.RepoRoot(), name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	if err := yaml.Unmarshal([]byte(readRepoFile(t, "docker-compose.yml")), &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// composeVarRE matches ${VAR}, ${VAR:-default} and ${VAR-default} as compose (and pushwire's
// config file) interpolate them.
var composeVarRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}`)

// resolveDefaults expands every ${VAR:-default} with its default, as compose does with an
// empty environment.
func resolveDefaults(s string) string {
	return composeVarRE.ReplaceAllStringFunc(s, func(m string) string {
		return composeVarRE.FindStringSubmatch(m)[2]
	})
}

// TestComposeFile checks the structure of docker-compose.yml (what `docker compose config`
// cannot: the wiring between the services, the image and deploy/pushwire.yaml) and, when a
// compose implementation is installed, that it accepts the file.
func TestComposeFile(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	for _, name := range []string{"pushwire", "postgres", "redis"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("docker-compose.yml: no service %q", name)
		}
	}

	pw := c.Services["pushwire"]
	if b, ok := pw.Build.(string); !ok || b != "." {
		t.Errorf("pushwire.build = %v, want .", pw.Build)
	}
	if !slices.Contains(pw.Command, "--config="+deployConfigPath) {
		t.Errorf("pushwire.command = %q, want --config=%s", pw.Command, deployConfigPath)
	}
	if !slices.Contains(pw.Volumes, "./deploy/pushwire.yaml:"+deployConfigPath+":ro") {
		t.Errorf("pushwire.volumes = %q, want ./deploy/pushwire.yaml mounted read-only at %s", pw.Volumes, deployConfigPath)
	}
	for _, port := range []string{containerPort, containerMetrics} {
		if !slices.ContainsFunc(pw.Ports, func(p string) bool { return strings.HasSuffix(p, ":"+port) }) {
			t.Errorf("pushwire.ports = %q, want container port %s published", pw.Ports, port)
		}
	}
	for _, dep := range []string{"postgres", "redis"} {
		if cond := pw.DependsOn[dep]["condition"]; cond != "service_healthy" {
			t.Errorf("pushwire.depends_on.%s.condition = %q, want service_healthy", dep, cond)
		}
	}
	for name, s := range c.Services {
		for dep, d := range s.DependsOn {
			if d["condition"] == "service_healthy" && c.Services[dep].Healthcheck == nil {
				t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
				if _, ok := c.Volumes[src]; !ok {
					t.Errorf("%s mounts volume %q, which is not declared under volumes:", name, src)
				}
			}
		}
	}
	// Setting only some of PUSHWIRE_APP_ID/_KEY/_SECRET stops the server at start.
	var appVars int
	for _, k := range []string{"PUSHWIRE_APP_ID", "PUSHWIRE_APP_KEY", "PUSHWIRE_APP_SECRET"} {
		if _, ok := pw.Environment[k]; ok {
			appVars++
		}
	}
	if appVars != 0 && appVars != 3 {
		t.Errorf("pushwire.environment sets %d of PUSHWIRE_APP_ID, _KEY and _SECRET; pushwire needs all three or none", appVars)
	}
	// Every ${VAR} of deploy/pushwire.yaml must reach the container, or the operator's
	// value would silently be replaced by the file's default.
	for line := range strings.SplitSeq(readRepoFile(t, "deploy/pushwire.yaml"), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue // pushwire does not expand whole-line comments
		}
		for _, m := range composeVarRE.FindAllStringSubmatch(line, -1) {
			if _, ok := pw.Environment[m[1]]; !ok {
				t.Errorf("deploy/pushwire.yaml uses ${%s}, which pushwire.environment does not pass", m[1])
			}
		}
	}
	// docker stop sends SIGKILL after stop_grace_period (default 10s): it must cover the
	// drain delay and the shutdown timeout.
	cfg := loadDeployConfig(t, pw)
	grace, err := time.ParseDuration(pw.StopGracePeriod)
	if err != nil {
		t.Errorf("pushwire.stop_grace_period %q: %v", pw.StopGracePeriod, err)
	} else if need := cfg.DrainDelay.D() + cfg.ShutdownTimeout.D(); grace <= need {
		t.Errorf("pushwire.stop_grace_period = %s, want more than drain_delay + shutdown_timeout = %s", grace, need)
	}

	pg := c.Services["postgres"]
	if !strings.HasPrefix(pg.Image, "postgres:16") {
		t.Errorf("postgres.image = %q, want postgres:16", pg.Image)
	}
	if pg.Healthcheck == nil || !strings.Contains(strings.Join(pg.Healthcheck.Test, " "), "pg_isready") {
		t.Errorf("postgres.healthcheck must run pg_isready")
	}
	if !slices.ContainsFunc(pg.Volumes, func(v string) bool { return strings.HasSuffix(v, ":/var/lib/postgresql/data") }) {
		t.Errorf("postgres.volumes = %q, want a volume at /var/lib/postgresql/data", pg.Volumes)
	}
	if p := pg.Environment["POSTGRES_PASSWORD"]; !strings.HasPrefix(p, "${POSTGRES_PASSWORD:-") {
		t.Errorf("postgres POSTGRES_PASSWORD = %q, want ${POSTGRES_PASSWORD:-default}", p)
	}

	rd := c.Services["redis"]
	if !strings.HasPrefix(rd.Image, "redis:7") {
		t.Errorf("redis.image = %q, want redis:7", rd.Image)
	}
	if rd.Healthcheck == nil || !strings.Contains(strings.Join(rd.Healthcheck.Test, " "), "redis-cli ping") {
		t.Errorf("redis.healthcheck must run redis-cli ping")
	}

	// The authoritative check, where a compose implementation is installed.
	for _, cmd := range [][]string{{"docker", "compose"}, {"docker-compose"}} {
		if _, err := exec.LookPath(cmd[0]); err != nil {
			continue
		}
		x := exec.Command(cmd[0], append(cmd[1:], "config", "--quiet")...)
		x.Dir = testkit.RepoRoot()
		out, err := x.CombinedOutput()
		if err != nil && len(cmd) == 2 && strings.Contains(string(out), "unknown") {
			continue // a docker client without the compose plugin
		}
		if err != nil {
			t.Errorf("%s config: %v\n%s", strings.Join(cmd, " "), err, out)
		}
		return
	}
	t.Log("no docker compose or docker-compose installed: checked the structure only")
}

// loadDeployConfig loads deploy/pushwire.yaml as pushwire would in the pushwire service,
// with the environment compose gives it by default.
func loadDeployConfig(t *testing.T, pw composeService) *config.Config {
	t.Helper()
	env := map[string]string{}
	for k, v := range pw.Environment {
		env[k] = resolveDefaults(v)
	}
	cfg, err := config.Load(config.LoadOptions{
		Path: filepath.Join(testkit.RepoRoot(), "deploy", "pushwire.yaml"),
		LookupEnv: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		},
	})
	if err != nil {
		t.Fatalf("deploy/pushwire.yaml with the compose environment: %v", err)
	}
	return cfg
}

// TestDeployConfig checks the production settings of deploy/pushwire.yaml, then runs the real
// binary with it and a secret from the environment: the server starts, logs JSON and signs
// with the injected secret.
func TestDeployConfig(t *testing.T) {
	t.Parallel()
	pw := loadCompose(t).Services["pushwire"]
	cfg := loadDeployConfig(t, pw)
	if cfg.Host != "0.0.0.0" || cfg.MetricsHost != "0.0.0.0" {
		t.Errorf("host %q, metrics_host %q: want 0.0.0.0 to be reachable in a container", cfg.Host, cfg.MetricsHost)
	}
	if cfg.LogFormat != "json" {
		t.Errorf("log_format = %q, want json", cfg.LogFormat)
	}
	if cfg.DrainDelay.D() != 5*time.Second {
		t.Errorf("drain_delay = %s, want 5s", cfg.DrainDelay.D())
	}
	if p := cfg.Port; p != 6001 || cfg.MetricsPort != 9601 || !cfg.MetricsOn() {
		t.Errorf("port %d, metrics port %d (on %v): want 6001 and 9601 as published", p, cfg.MetricsPort, cfg.MetricsOn())
	}
	if len(cfg.Apps) != 1 {
		t.Fatalf("apps: %d, want 1", len(cfg.Apps))
	}

	const secret = "secret-from-the-environment"
	env := []string{"PUSHWIRE_PROD_SECRET=" + secret}
	for k, v := range pw.Environment {
		if k != "PUSHWIRE_PROD_SECRET" {
			env = append(env, k+"="+resolveDefaults(v))
		}
	}
	// testkit's flags (127.0.0.1, free ports) win over the file; drain_delay 0 keeps it quick.
	s := testkit.Start(t, testkit.Options{Port: -1, Config: readRepoFile(t, "deploy/pushwire.yaml"), Env: env,
		Args: []string{"--drain-delay=0s"}})
	c := connectApp(t, s, cfg.Apps[0].Key, secret)
	c.subscribePrivate(t, "private-deploy-check")
	c.close()
	s.Stop()
	sc := bufio.NewScanner(strings.NewReader(s.Output()))
	lines := 0
	for sc.Scan() {
		var entry map[string]any
		if err := json.Unmarshal(sc.Bytes(), &entry); err != nil || entry["msg"] == nil {
			t.Errorf("log line is not JSON: %s", sc.Text())
		}
		lines++
	}
	if lines == 0 {
		t.Error("pushwire logged nothing")
	}
	if strings.Contains(s.Output(), secret) {
		t.Error("pushwire logged the app secret")
	}
}

// TestDockerfile checks the image recipe: one stage FROM scratch (no registry pull) holding the
// static binary that scripts/image.sh (make image) builds and stages, a non-root numeric
// user, the compose ports, and a build context of the staged files only. integration/image TestContainerImage
// builds and runs it.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	df := readRepoFile(t, "Dockerfile")
	var froms, expose, copies []string
	var entrypoint, cmd, user string
	for line := range strings.SplitSeq(df, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		rest := strings.TrimSpace(strings.TrimPrefix(line, f[0]))
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, f[1])
		case "COPY":
			copies = append(copies, rest)
		case "EXPOSE":
			expose = append(expose, f[1:]...)
		case "ENTRYPOINT":
			entrypoint = rest
		case "CMD":
			cmd = rest
		case "USER":
			user = rest
		}
	}
	if !slices.Equal(froms, []string{"scratch"}) {
		t.Errorf("FROM %q: want one stage FROM scratch (nothing to pull)", froms)
	}
	if !slices.Contains(copies, "bin/image/pushwire /pushwire") {
		t.Errorf("COPY %q: want bin/image/pushwire /pushwire", copies)
	}
	if user != "65532:65532" {
		t.Errorf("USER %q, want 65532:65532", user)
	}
	script := readRepoFile(t, "scripts/image.sh")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-ldflags='-s -w'", "-o bin/image/pushwire ./cmd/pushwire"} {
		if !strings.Contains(script, want) {
			t.Errorf("scripts/image.sh's go build lacks %s", want)
		}
	}
	if !strings.Contains(readRepoFile(t, "Makefile"), "scripts/image.sh") {
		t.Error("make image does not run scripts/image.sh")
	}
	if !slices.Contains(expose, containerPort) || !slices.Contains(expose, containerMetrics) {
		t.Errorf("EXPOSE %q, want %s and %s", expose, containerPort, containerMetrics)
	}
	var ep, args []string
	if json.Unmarshal([]byte(entrypoint), &ep) != nil || !slices.Equal(ep, []string{"/pushwire"}) {
		t.Errorf("ENTRYPOINT %s, want [\"/pushwire\"]", entrypoint)
	}
	if json.Unmarshal([]byte(cmd), &args) != nil || !slices.Contains(args, "--host=0.0.0.0") || !slices.Contains(args, "--metrics-host=0.0.0.0") {
		t.Errorf("CMD %s, want --host=0.0.0.0 and --metrics-host=0.0.0.0", cmd)
	}
	ignore := strings.Fields(readRepoFile(t, ".dockerignore"))
	for _, want := range []string{"*", "!bin/image/pushwire", "!bin/image/ca-certificates.crt"} {
		if !slices.Contains(ignore, want) {
			t.Errorf(".dockerignore lacks %s (the context is the staged files only)", want)
		}
	}
}
