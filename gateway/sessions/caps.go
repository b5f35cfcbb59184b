package sessions

import "sync"

// userSessions indexes stateful sessions by user.
type userSessions struct {
	mu sync.Mutex
	m  map[string]map[*Session]struct{}
}

// add registers d for user and returns the sessions of that user to close
// to stay within max (the least recently used, never d itself).
func (us *userSessions) add(user string, d *Session, max int) []*Session {
	us.mu.Lock()
	defer us.mu.Unlock()
	if us.m == nil {
		us.m = map[string]map[*Session]struct{}{}
	}
	set := us.m[user]
	if set == nil {
		set = map[*Session]struct{}{}
		us.m[user] = set
	}
	set[d] = struct{}{}
	var evict []*Session
	for len(set) > max {
		var lru *Session
		for o := range set {
			if o != d && (lru == nil || o.lastUsed.Load() < lru.lastUsed.Load()) {
				lru = o
			}
		}
		if lru == nil {
			break
		}
		delete(set, lru)
		evict = append(evict, lru)
	}
	return evict
}

func (us *userSessions) remove(user string, d *Session) {
	us.mu.Lock()
	defer us.mu.Unlock()
	if set := us.m[user]; set != nil {
		delete(set, d)
		if len(set) == 0 {
			delete(us.m, user)
		}
	}
}

func (us *userSessions) count(user string) int {
	us.mu.Lock()
	defer us.mu.Unlock()
	return len(us.m[user])
}
