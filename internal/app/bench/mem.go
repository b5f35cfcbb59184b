package bench

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// ProcRSS returns the resident set size of process pid in KiB (VmRSS in
// /proc/PID/status).
func ProcRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(string(b))
}

// parseVmRSS extracts the VmRSS line ("VmRSS:	  12345 kB") of a
// /proc/PID/status text, in KiB.
func parseVmRSS(status string) (int64, error) {
	for line := range strings.Lines(status) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("proc status: bad VmRSS line %q", strings.TrimSpace(line))
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc status: bad VmRSS value %q", f[0])
		}
		return n, nil
	}
	return 0, fmt.Errorf("proc status: no VmRSS line")
}

// MemStats is the Go runtime's view of a process's memory after a forced
// garbage collection, as served by MemStatsHandler.
type MemStats struct {
	HeapAlloc  uint64 `json:"heap_alloc"`  // bytes of live heap objects
	HeapInuse  uint64 `json:"heap_inuse"`  // bytes in in-use heap spans
	StackInuse uint64 `json:"stack_inuse"` // bytes of goroutine stacks
	Sys        uint64 `json:"sys"`         // bytes obtained from the OS
	Goroutines int    `json:"goroutines"`
}

// ReadMemStats runs a garbage collection (with release, also returns as much
// memory to the operating system as possible, debug.FreeOSMemory) and
// returns the runtime's memory statistics.
func ReadMemStats(release bool) MemStats {
	if release {
		debug.FreeOSMemory()
	} else {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return MemStats{HeapAlloc: m.HeapAlloc, HeapInuse: m.HeapInuse, StackInuse: m.StackInuse,
		Sys: m.Sys, Goroutines: runtime.NumGoroutine()}
}

// MemStatsHandler answers GET with ReadMemStats as JSON; the query
// "release=1" releases free memory to the OS first. It is for the
// benchmark's own debug listeners (loopback), never for the product.
func MemStatsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ReadMemStats(r.URL.Query().Get("release") == "1"))
	})
}
