// Package wirepb holds the generated protobuf types of pushwire's binary wire format
// (envelope.proto: the Sockudo server's field numbers, which sockudo-js uses; flutter.proto:
// sockudo_flutter's numbering of the envelope). protocol's codec is the only user.
//
// The .proto files are pushwire's own, written from the field numbers. Regenerate the Go
// code with `make proto` (protoc from Debian's protobuf-compiler, protoc-gen-go from
// `go install google.golang.org/protobuf/cmd/protoc-gen-go`); the generated files are
// checked in so building and testing never need protoc.
package wirepb
