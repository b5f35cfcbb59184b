package credentials

import (
	"context"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/go-jose/go-jose/v4"
)

// Source reads the subject map file once: the cache key digests the very
// bytes that were parsed, so a file replaced between two reads cannot give
// a new mapping the key of the old one (and its users' cached tokens).
// inotify counts the opens of the file (closes are watched too, so that
// consecutive opens are not coalesced into one event).
func TestSubjectMapFileReadOnce(t *testing.T) {
	t.Parallel()
	srv := newJWTBearerServer(t, &testRSAKey(t).PublicKey, jose.RS256, "ck", "https://login.salesforce.com")
	mapFile := writeFile(t, "map.yaml", []byte("alice: alice@acme.com\n"))
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Skipf("inotify: %v", err)
	}
	defer syscall.Close(fd)
	if _, err := syscall.InotifyAddWatch(fd, mapFile, syscall.IN_OPEN|syscall.IN_CLOSE_NOWRITE); err != nil {
		t.Skipf("inotify: %v", err)
	}
	src := mustSource(t, NewBroker(BrokerOptions{}), "salesforce", Config{
		Flow: FlowJWTBearer, TokenURL: srv.TokenURL(), ClientID: "ck", PrivateKeyFile: writeRSAKey(t, false),
		AssertionAudience: "https://login.salesforce.com", SubjectMapFile: mapFile,
	})
	opens := 0
	buf := make([]byte, 4096)
	for {
		n, err := syscall.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
			if ev.Mask&syscall.IN_OPEN != 0 {
				opens++
			}
			off += syscall.SizeofInotifyEvent + int(ev.Len)
		}
	}
	if opens != 1 {
		t.Errorf("building the source opened the subject map file %d times, want 1 (the cache key must digest the bytes that were parsed)", opens)
	}
	if r, err := src.Token(user(context.Background(), "alice", time.Time{})); err != nil || r.Token.PlatformSubject != "alice@acme.com" {
		t.Errorf("alice: %+v %v", r, err)
	}
}
