package httpapi

import (
	"net/http"
	"runtime"
	"runtime/metrics"
)

// memorySamples are read with runtime/metrics, which, unlike runtime.ReadMemStats, does not
// stop the world, so /usage stays cheap however often it is called.
var memorySamples = [...]string{
	"/memory/classes/heap/objects:bytes", // live and not yet swept heap objects: MemStats.Alloc
	"/memory/classes/total:bytes",        // everything mapped from the OS: MemStats.Sys
}

// usageBody is the JSON of GET /usage. Every number is node-local; connections and apps
// cover the caller's app only.
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

// usage answers GET /usage for the app the caller proved it holds, authenticated like GET
// /stats (a request signed with that app's key over the path /usage, or the console
// credential): that app's connections and occupied channels on this node, and the node's
// memory, goroutines and uptime. Sockudo's /usage is unsigned; pushwire's is not, so the
// counts are no one else's to read. Every number is a maintained counter or a runtime
// metric: the answer costs the same with one channel or a million.
func (a *api) usage(w http.ResponseWriter, r *http.Request) { a.usageOf(w, r, false) }

// pathUsage answers GET /apps/{id}/usage, what the SDKs' get({path: '/usage'}) signs: /usage
// for the app of the path.
func (a *api) pathUsage(w http.ResponseWriter, r *http.Request) { a.usageOf(w, r, true) }

func (a *api) usageOf(w http.ResponseWriter, r *http.Request, pathApp bool) {
	id, aerr := a.statsCaller(r, pathApp)
	if aerr != nil {
		fail(w, aerr)
		return
	}
	u := appUsage{Connections: a.hub.Connections(id), Channels: a.hub.OccupiedChannels(id)}
	out := usageBody{Apps: map[string]appUsage{id: u}, Connections: u.Connections}
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
