package front

import (
	"fmt"
	"testing"
	"time"
)

// TestAuthFailureLimiterBounded: the limiter's memory and output are
// bounded however many addresses fail.
func TestAuthFailureLimiterBounded(t *testing.T) {
	var summaries []AuthSummary
	l := NewAuthFailureLimiter(time.Hour, func(s []AuthSummary) { summaries = s })
	recorded := 0
	for i := 0; i < 5*AuthFailureMaxAddrs; i++ {
		for j := 0; j < 3; j++ {
			if l.Allow(fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)) {
				recorded++
			}
		}
	}
	if len(l.counts) > AuthFailureMaxAddrs {
		t.Fatalf("%d addresses tracked, bound %d", len(l.counts), AuthFailureMaxAddrs)
	}
	if recorded > AuthFailureMaxRecords {
		t.Fatalf("%d failures recorded individually in one window, bound %d", recorded, AuthFailureMaxRecords)
	}
	l.FlushNow()
	total := 0
	for _, s := range summaries {
		total += s.Count
	}
	if recorded+total != 15*AuthFailureMaxAddrs || len(summaries) > AuthFailureMaxSummaries+1 {
		t.Fatalf("%d recorded + %d summarized (in %d summaries), want %d in at most %d summaries",
			recorded, total, len(summaries), 15*AuthFailureMaxAddrs, AuthFailureMaxSummaries+1)
	}
}
