// Package config owns pushwire's options: the server settings and the apps it serves, their
// documented defaults, loading from a YAML file and PUSHWIRE_* environment variables, and
// validation with messages that name the offending field.
//
// Only cmd/pushwire loads configuration; every other package receives plain values from here.
package config
