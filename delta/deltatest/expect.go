package deltatest

import (
	"reflect"
	"testing"

	"github.com/pushwire/pushwire/protocol"
)

// ExpectRebuilt is the text a delta subscriber's frame must rebuild to when a plain
// subscriber received plain for the same message: plain itself for a full frame, the
// server's lean target of it (protocol.DeltaTarget) for a delta.
func ExpectRebuilt(plain string, isDelta bool) string {
	if isDelta {
		if t, ok := protocol.DeltaTarget([]byte(plain)); ok {
			return string(t)
		}
		return "(no delta target: the message should have gone out full)"
	}
	return plain
}

// RebuiltAs reports whether rebuilt (from a delta frame when isDelta) is the text the server
// defines for the message a plain subscriber received as plain (ExpectRebuilt) and, for a
// delta, whether the clients surface from it the data they surface from the plain frame.
func RebuiltAs(t testing.TB, rebuilt string, isDelta bool, plain string) bool {
	t.Helper()
	if rebuilt != ExpectRebuilt(plain, isDelta) {
		return false
	}
	if !isDelta {
		return true
	}
	got, err := protocol.ClientData([]byte(rebuilt), true)
	if err != nil {
		t.Fatal(err)
	}
	want, err := protocol.ClientData([]byte(plain), false)
	if err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(got, want)
}
