// Package testkit holds test helpers shared by pushwire's end-to-end suites: it builds the
// real pushwire binary once, runs it on 127.0.0.1:6001 (serialised across test packages by a
// file lock) or on a free port, waits until it is ready, and stops it gracefully, failing the
// test if the server reported a data race or a panic.
package testkit
