//go:build !linux

package server

import "errors"

// netpoller is Linux-only (epoll); elsewhere every connection uses coder/websocket.
type netpoller struct{}

// epollSys is the Linux netpoller's seam to the kernel (unused here).
type epollSys struct{}

func newNetpoller() (*netpoller, error) { return nil, errors.ErrUnsupported }

func newNetpollerWith(*epollSys, pollHooks) (*netpoller, error) { return nil, errors.ErrUnsupported }

func (*netpoller) add(int, func()) error { return errors.ErrUnsupported }
func (*netpoller) rearm(int) error       { return errors.ErrUnsupported }
func (*netpoller) remove(int)            {}
func (*netpoller) close()                {}

// unreadBytes is not known here (no epoll transport on this platform).
func unreadBytes(int) int { return 0 }
