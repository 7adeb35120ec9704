package console

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushwire/pushwire/config"
)

func fuzzConsole() *Console {
	now := time.Unix(1_800_000_000, 0)
	a := config.DefaultApp()
	a.ApplyDefaults()
	return New([]config.App{a}, Options{Now: func() time.Time { return now }})
}

// FuzzSessionApp: the cookie parser never panics, and accepts a value only when it is the
// signed session of a known app with an expiry still ahead.
func FuzzSessionApp(f *testing.F) {
	c := fuzzConsole()
	valid := c.sessionValue("app-id", c.now().Unix()+60)
	f.Add(valid)
	f.Add(c.sessionValue("app-id", c.now().Unix()-1))
	f.Add(c.sessionValue("nope", c.now().Unix()+60))
	f.Add("")
	f.Add("YXBwLWlkADE3OTY1ODYyNDMAOWE2MQ")
	f.Add("%%%")
	f.Fuzz(func(t *testing.T, v string) {
		id, ok := c.sessionApp(v)
		if !ok {
			return
		}
		// Accepted: it must be exactly what sessionValue makes for that app and a live expiry.
		raw, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil {
			t.Fatalf("accepted undecodable %q", v)
		}
		parts := strings.Split(string(raw), "\x00")
		exp, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil || exp <= c.now().Unix() || id != "app-id" || c.sessionValue(id, exp) != v {
			t.Fatalf("accepted %q (app %q) that sessionValue did not make", v, id)
		}
	})
}

func TestSessionRoundTrip(t *testing.T) {
	c := fuzzConsole()
	exp := c.now().Add(time.Hour).Unix()
	if id, ok := c.sessionApp(c.sessionValue("app-id", exp)); !ok || id != "app-id" {
		t.Fatalf("own session refused: %q %v", id, ok)
	}
	other := fuzzConsole() // another process: another key
	if _, ok := other.sessionApp(c.sessionValue("app-id", exp)); ok {
		t.Error("a session of another process (key) was accepted")
	}
	if _, ok := c.sessionApp(c.sessionValue("app-id", c.now().Unix())); ok {
		t.Error("a session expiring now was accepted")
	}
}
