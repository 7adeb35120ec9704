package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pushwire/pushwire/config"
	"github.com/pushwire/pushwire/protocol"
)

// capFlag collects repeated --grant pattern=op,op values.
type capFlag map[string][]string

func (c capFlag) String() string { return "" }

func (c capFlag) Set(v string) error {
	pattern, ops, ok := strings.Cut(v, "=")
	if !ok || pattern == "" || ops == "" {
		return errors.New(`want pattern=op[,op...], e.g. "private-orders:*=subscribe,history"`)
	}
	for _, op := range strings.Split(ops, ",") {
		if op = strings.TrimSpace(op); op != "" {
			if _, known := protocol.ParseOp(op); !known {
				return fmt.Errorf("unknown operation %q: the server would refuse the token", op)
			}
			c[pattern] = append(c[pattern], op)
		}
	}
	return nil
}

// runToken implements `pushwire token`: it prints a capability token (HS256 JWT signed with
// the app secret, kid = app key) for a V2 client to pass as ?token=. The app comes from the
// same config file, flags and PUSHWIRE_* variables as the server (default: the development
// app).
func runToken(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pushwire token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML config file holding the app (default: the built-in app-id/app-key/app-secret)")
	appID := fs.String("app", "", "id of the app that signs the token (default: the first app)")
	client := fs.String("client", "", "client id (x-sockudo-client-id): the connection's user identity (required)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token, at most 24h")
	jti := fs.String("jti", "", "token id, for revocation (default: a random UUID)")
	grants := capFlag{}
	fs.Var(grants, "grant", `channel pattern and operations, repeatable: "private-orders:*=subscribe,history" (default "*=subscribe,publish,history,presence")`)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pushwire token --client ID [--grant pattern=ops]... [--ttl 1h] [--app ID] [--config FILE]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *client == "" {
		fmt.Fprintln(stderr, "pushwire token: --client is required")
		return 2
	}
	var fargs []string
	if *configPath != "" {
		fargs = []string{"--config", *configPath}
	}
	cfs := flag.NewFlagSet("pushwire", flag.ContinueOnError)
	cfs.SetOutput(io.Discard)
	cflags := config.BindFlags(cfs)
	if err := cfs.Parse(fargs); err != nil {
		fmt.Fprintln(stderr, "pushwire token:", err)
		return 2
	}
	cfg, err := config.LoadWithFlags(cflags, os.LookupEnv)
	if err != nil {
		fmt.Fprintln(stderr, "pushwire token:", err)
		return 1
	}
	app := cfg.Apps[0]
	if *appID != "" {
		found := false
		for _, a := range cfg.Apps {
			if a.ID == *appID {
				app, found = a, true
			}
		}
		if !found {
			fmt.Fprintf(stderr, "pushwire token: no app with id %q\n", *appID)
			return 1
		}
	}
	if len(grants) == 0 {
		grants["*"] = []string{"subscribe", "publish", "history", "presence"}
	}
	if *jti == "" {
		*jti = protocol.NewUUID()
	}
	tok, err := protocol.SignCapabilityToken(app.Key, app.Secret, protocol.TokenRequest{
		ClientID: *client, JTI: *jti, Capability: grants, IssuedAt: time.Now(), TTL: *ttl,
	})
	if err != nil {
		fmt.Fprintln(stderr, "pushwire token:", err)
		return 1
	}
	fmt.Fprintln(stdout, tok)
	return 0
}
