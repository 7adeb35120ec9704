package httpapi

import (
	"net/http"
	"runtime"
	"runtime/metrics"
)

// memorySamples are read with runtime/metrics, which, unlike runtime.ReadMemStats, does not
// stop the world: /usage is unsigned, so it must stay cheap.
var memorySamples = [...]string{
	"/memory/classes/heap/objects:bytes", // live and not yet swept heap objects: MemStats.Alloc
	"/memory/classes/total:bytes",        // everything mapped from the OS: MemStats.Sys
}

// usageBody is the JSON of GET /usage. Every number is node-local.
type usageBody struct {
	Connections   int                 `json:"connections"`
	Apps          map[string]appUsage `json:"apps"`
	Memory        memoryUsage         `json:"memory"`
	Goroutines    int                 `json:"goroutines"`
	UptimeSeconds int64               `json:"uptime_seconds"`
}

type appUsage struct {
	Connections int `json:"connections"`
	Channels    int `json:"channels"`
}

type memoryUsage struct {
	AllocBytes uint64 `json:"alloc_bytes"`
	SysBytes   uint64 `json:"sys_bytes"`
}

// usage answers GET /usage (unsigned, like Sockudo's): this node's connections and occupied
// channels per app, its memory, goroutines and uptime.
func (a *api) usage(w http.ResponseWriter, _ *http.Request) {
	out := usageBody{Apps: make(map[string]appUsage, len(a.appIDs))}
	for _, id := range a.appIDs {
		if _, ok := a.hub.AppByID(id); !ok {
			continue
		}
		list, err := a.hub.Channels(id, "")
		if err != nil {
			continue
		}
		u := appUsage{Connections: a.hub.Connections(id), Channels: len(list)}
		out.Apps[id] = u
		out.Connections += u.Connections
	}
	samples := make([]metrics.Sample, len(memorySamples))
	for i, name := range memorySamples {
		samples[i].Name = name
	}
	metrics.Read(samples)
	out.Memory = memoryUsage{AllocBytes: uint64Value(samples[0]), SysBytes: uint64Value(samples[1])}
	out.Goroutines = runtime.NumGoroutine()
	out.UptimeSeconds = int64(a.now().Sub(a.start).Seconds())
	writeJSON(w, http.StatusOK, out)
}

func uint64Value(s metrics.Sample) uint64 {
	if s.Value.Kind() == metrics.KindUint64 {
		return s.Value.Uint64()
	}
	return 0
}
