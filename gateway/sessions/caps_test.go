package sessions

import "testing"

// TestUserSessionsEvictsLeastRecentlyUsed: a user's sessions beyond the cap
// close the least recently used first, never the new one.
func TestUserSessionsEvictsLeastRecentlyUsed(t *testing.T) {
	var us userSessions
	mk := func(used int64) *Session {
		s := &Session{}
		s.lastUsed.Store(used)
		return s
	}
	a, b, c := mk(30), mk(10), mk(20)
	if ev := us.add("alice", a, 2); len(ev) != 0 {
		t.Fatalf("evicted %d under the cap", len(ev))
	}
	us.add("alice", b, 2)
	ev := us.add("alice", c, 2)
	if len(ev) != 1 || ev[0] != b {
		t.Fatalf("evicted %v, want the least recently used session", ev)
	}
	newest := mk(0) // older timestamp than all, but it is the one being added
	if ev := us.add("alice", newest, 2); len(ev) != 1 || ev[0] == newest {
		t.Fatalf("the new session was evicted: %v", ev)
	}
	if n := us.count("alice"); n != 2 {
		t.Errorf("alice has %d sessions, want 2", n)
	}
	us.remove("alice", a)
	us.remove("alice", c)
	us.remove("alice", newest)
	if n := us.count("alice"); n != 0 || len(us.m) != 0 {
		t.Errorf("after removing all: %d sessions, %d users tracked", n, len(us.m))
	}
}
