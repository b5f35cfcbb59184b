package testproc

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// alive reports whether pid exists and is not a zombie (a killed child
// whose new parent has not reaped it yet counts as dead).
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}

// TestCloseKillsTheProcessGroup: Close kills not only the program but the
// children it started (a shell's background sleep), reaps the program, and
// is idempotent.
func TestCloseKillsTheProcessGroup(t *testing.T) {
	t.Parallel()
	p := startProc(t, "/bin/sh", "-c", "sleep 300 & echo child=$!; wait")
	re := regexp.MustCompile(`child=(\d+)`)
	var child int
	deadline := time.Now().Add(10 * time.Second)
	for child == 0 {
		if m := re.FindStringSubmatch(p.Log()); m != nil {
			child, _ = strconv.Atoi(m[1])
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shell did not report its child; log %q", p.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !alive(child) || !alive(p.Pid()) {
		t.Fatalf("before Close: shell alive %v, sleep %d alive %v", alive(p.Pid()), child, alive(child))
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if st := p.State(); st == nil || st.Success() {
		t.Errorf("State after Close = %v, want killed", st)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for alive(child) {
		if time.Now().After(deadline) {
			t.Fatalf("sleep %d, the program's child, survived Close", child)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
