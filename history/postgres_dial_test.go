package history

import (
	"context"
	"errors"
	"net"
	"testing"
)

// bufConn is a connection that records the send buffer asked for.
type bufConn struct {
	net.Conn
	asked int
}

func (c *bufConn) SetWriteBuffer(n int) error { c.asked = n; return nil }

// TestLargeSendBuffer: every connection the store dials asks for sendBufferBytes of send
// buffer (a group commit is then one write the kernel takes whole); dial errors and
// connections without a send buffer pass through unchanged.
func TestLargeSendBuffer(t *testing.T) {
	ctx := context.Background()
	bc := &bufConn{}
	dial := largeSendBuffer(func(context.Context, string, string) (net.Conn, error) { return bc, nil })
	c, err := dial(ctx, "tcp", "127.0.0.1:5432")
	if err != nil || c != bc {
		t.Fatalf("dial = %v, %v; want the dialed connection", c, err)
	}
	if bc.asked != sendBufferBytes {
		t.Errorf("send buffer asked = %d, want %d", bc.asked, sendBufferBytes)
	}

	boom := errors.New("refused")
	if _, err := largeSendBuffer(func(context.Context, string, string) (net.Conn, error) { return nil, boom })(ctx, "tcp", "x"); !errors.Is(err, boom) {
		t.Errorf("dial error = %v, want %v", err, boom)
	}

	a, b := net.Pipe() // no SetWriteBuffer
	defer a.Close()
	defer b.Close()
	c, err = largeSendBuffer(func(context.Context, string, string) (net.Conn, error) { return a, nil })(ctx, "pipe", "")
	if err != nil || c != a {
		t.Errorf("dial = %v, %v; want the pipe unchanged", c, err)
	}
}
