// Package wsframe is a small, allocation-free RFC 6455 frame codec used by the
// event-driven (epoll) WebSocket transport in package server.
//
// It parses frame headers from a byte slice (ParseHeader), unmasks payloads
// (Mask), appends encoded server frames to a buffer (AppendFrame, AppendClose)
// so that many frames can be sent with one write, and computes the handshake
// accept key (AcceptKey). It enforces the protocol rules a server must check:
// client frames must be masked, control frames are at most 125 bytes and not
// fragmented, reserved bits and opcodes are rejected, and 64-bit lengths must
// have the top bit clear.
//
// Assembler joins frames into messages holding memory in step with the bytes
// received, never with the length a header declares, reserved in a Budget and
// dropped once a message is complete.
package wsframe
