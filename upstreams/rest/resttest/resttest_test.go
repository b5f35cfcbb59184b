package resttest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRecorder(t *testing.T) {
	t.Parallel()
	sandbox := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer stale" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-Path", r.URL.Path)
		_, _ = io.WriteString(w, "ok")
	})
	rec := &Recorder{
		IsToken: func(r *http.Request) bool { return r.URL.Path == "/token" },
		IsREST:  func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") },
		Intercept: func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != "/api/intercepted" {
				return false
			}
			w.WriteHeader(http.StatusTeapot)
			return true
		},
	}
	ts := httptest.NewServer(rec.Handler(sandbox))
	t.Cleanup(ts.Close)
	send := func(path, bearer string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp
	}
	send("/token", "")
	send("/other", "x")
	if r := send("/api/a", "stale"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("stale bearer: %d", r.StatusCode)
	}
	if r := send("/api/b", "fresh"); r.StatusCode != http.StatusOK || r.Header.Get("X-Path") != "/api/b" {
		t.Errorf("fresh bearer: %d %v (headers are relayed)", r.StatusCode, r.Header)
	}
	if r := send("/api/intercepted", "fresh"); r.StatusCode != http.StatusTeapot {
		t.Errorf("intercepted: %d", r.StatusCode)
	}
	if got := [3]int64{rec.TokenHits.Load(), rec.RestHits.Load(), rec.Rest401.Load()}; got != [3]int64{1, 3, 1} {
		t.Errorf("token, rest, 401 = %v, want [1 3 1]", got)
	}
	if diff := cmp.Diff([]string{"stale", "fresh", "fresh"}, rec.Bearers()); diff != "" {
		t.Errorf("bearers (-want +got):\n%s", diff)
	}
}

func TestSyncBufferConcurrentWrites(t *testing.T) {
	t.Parallel()
	var b SyncBuffer
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fmt.Fprintf(&b, "line %d\n", i)
		}()
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 20 {
		t.Errorf("%d lines, want 20", n)
	}
}

func TestClockAndKeys(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	c := NewClock(start)
	c.Advance(90 * time.Second)
	if got := c.Now(); !got.Equal(start.Add(90 * time.Second)) {
		t.Errorf("Now after Advance = %v", got)
	}
	a, b := RSAKeys(t)
	a2, b2 := RSAKeys(t)
	if a == nil || b == nil || a.Equal(b) || a != a2 || b != b2 || a.N.BitLen() != 2048 {
		t.Error("RSAKeys: want two distinct 2048-bit keys, the same on every call")
	}
}
