package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The contract suite: every test runs against SQLite and PostgreSQL, each
// on a fresh database.

var ctx = context.Background()

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func h(s string) []byte { b := sha256.Sum256([]byte(s)); return b[:] }

func mustErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestContractClients(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		s := b.open(t)
		t0 := now().Add(-time.Hour)
		c := Client{ID: "c1", Metadata: []byte(`{"client_name":"x"}`), SecretHash: h("secret"), CreatedAt: t0, LastUsedAt: t0}
		noErr(t, "PutClient", s.PutClient(ctx, c))
		got, err := s.GetClient(ctx, "c1")
		noErr(t, "GetClient", err)
		if d := cmp.Diff(c, got); d != "" {
			t.Fatalf("GetClient (-put +got):\n%s", d)
		}
		mustErr(t, "PutClient again", s.PutClient(ctx, c), ErrConflict)
		_, err = s.GetClient(ctx, "nope")
		mustErr(t, "GetClient unknown", err, ErrNotFound)

		// A public client; LastUsedAt defaults to CreatedAt.
		pub := Client{ID: "c2", Metadata: []byte(`{}`), CreatedAt: t0}
		noErr(t, "PutClient public", s.PutClient(ctx, pub))
		got, err = s.GetClient(ctx, "c2")
		noErr(t, "GetClient public", err)
		if got.SecretHash != nil || !got.LastUsedAt.Equal(t0) {
			t.Fatalf("public client: SecretHash %x, LastUsedAt %v (want nil, %v)", got.SecretHash, got.LastUsedAt, t0)
		}

		// TouchClient writes at most once a minute.
		noErr(t, "TouchClient +30s", s.TouchClient(ctx, "c1", t0.Add(30*time.Second)))
		if got, _ := s.GetClient(ctx, "c1"); !got.LastUsedAt.Equal(t0) {
			t.Fatalf("touch within a minute moved LastUsedAt to %v", got.LastUsedAt)
		}
		noErr(t, "TouchClient +2m", s.TouchClient(ctx, "c1", t0.Add(2*time.Minute)))
		if got, _ := s.GetClient(ctx, "c1"); !got.LastUsedAt.Equal(t0.Add(2 * time.Minute)) {
			t.Fatalf("LastUsedAt = %v, want %v", got.LastUsedAt, t0.Add(2*time.Minute))
		}
		mustErr(t, "TouchClient unknown", s.TouchClient(ctx, "nope", t0), ErrNotFound)
	})
}

func TestContractDeleteClientsUnusedSince(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		s := b.open(t)
		n := now()
		old, recent := n.Add(-48*time.Hour), n.Add(-time.Minute)
		noErr(t, "put old", s.PutClient(ctx, Client{ID: "old", Metadata: []byte(`{}`), CreatedAt: old}))
		noErr(t, "put recent", s.PutClient(ctx, Client{ID: "recent", Metadata: []byte(`{}`), CreatedAt: old, LastUsedAt: recent}))
		for _, c := range []string{"old", "recent"} {
			noErr(t, "PutRefresh", s.PutRefresh(ctx, Refresh{Hash: h("rt-" + c), FamilyID: "fam-" + c, ClientID: c, Issuer: "iss", Subject: "u", IssuedAt: n, ExpiresAt: n.Add(time.Hour)}))
			noErr(t, "PutConsent", s.PutConsent(ctx, Consent{Issuer: "iss", Subject: "u", ClientID: c, Scope: "mcp", GrantedAt: n}))
		}
		got, err := s.DeleteClientsUnusedSince(ctx, n.Add(-24*time.Hour))
		noErr(t, "DeleteClientsUnusedSince", err)
		if got != 1 {
			t.Fatalf("deleted %d, want 1", got)
		}
		_, err = s.GetClient(ctx, "old")
		mustErr(t, "GetClient old", err, ErrNotFound)
		_, err = s.LookupRefresh(ctx, h("rt-old"))
		mustErr(t, "LookupRefresh of deleted client", err, ErrNotFound)
		_, err = s.GetConsent(ctx, "iss", "u", "old")
		mustErr(t, "GetConsent of deleted client", err, ErrNotFound)
		if _, err := s.GetClient(ctx, "recent"); err != nil {
			t.Fatalf("recent client deleted: %v", err)
		}
		if _, err := s.LookupRefresh(ctx, h("rt-recent")); err != nil {
			t.Fatalf("recent client's refresh token: %v", err)
		}
		if got, _ := s.DeleteClientsUnusedSince(ctx, n.Add(-24*time.Hour)); got != 0 {
			t.Fatalf("second delete: %d, want 0", got)
		}
	})
}

func testCode(name string, n time.Time) Code {
	return Code{Hash: h(name), ClientID: "c", SessionID: "sess-" + name, RedirectURI: "http://127.0.0.1/cb", CodeChallenge: "chal",
		Resource: "https://mcp.example.com/mcp", Scope: "mcp", FamilyID: "fam-" + name, ExpiresAt: n.Add(time.Minute)}
}

func TestContractCodes(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		s := b.open(t)
		n := now()
		c := testCode("code1", n)
		noErr(t, "PutCode", s.PutCode(ctx, c))
		mustErr(t, "PutCode again", s.PutCode(ctx, c), ErrConflict)
		got, err := s.TakeCode(ctx, c.Hash, n)
		noErr(t, "TakeCode", err)
		if d := cmp.Diff(c, got); d != "" {
			t.Fatalf("TakeCode (-put +got):\n%s", d)
		}
		got, err = s.TakeCode(ctx, c.Hash, n)
		mustErr(t, "second TakeCode", err, ErrUsed)
		if got.FamilyID != c.FamilyID || got.ClientID != c.ClientID {
			t.Fatalf("second TakeCode returned %+v, want the code (to revoke its family)", got)
		}
		// Used codes stay ErrUsed after expiry (until swept).
		_, err = s.TakeCode(ctx, c.Hash, n.Add(time.Hour))
		mustErr(t, "TakeCode of a used code after expiry", err, ErrUsed)

		_, err = s.TakeCode(ctx, h("unknown"), n)
		mustErr(t, "TakeCode unknown", err, ErrNotFound)
		exp := testCode("code2", n)
		noErr(t, "PutCode", s.PutCode(ctx, exp))
		_, err = s.TakeCode(ctx, exp.Hash, exp.ExpiresAt)
		mustErr(t, "TakeCode expired", err, ErrNotFound)
		// The refused take did not use it: expiry is judged against now.
		_, err = s.TakeCode(ctx, exp.Hash, n)
		noErr(t, "TakeCode of the same code before its expiry", err)
	})
}

func testRefresh(hash, family string, n time.Time) Refresh {
	return Refresh{Hash: h(hash), FamilyID: family, ClientID: "c", SessionID: "sess", Issuer: "https://idp", Subject: "alice",
		Scope: "mcp", Resource: "https://mcp.example.com/mcp", IssuedAt: n, ExpiresAt: n.Add(24 * time.Hour)}
}

func TestContractRefreshRotation(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		s := b.open(t)
		n := now()
		r1 := testRefresh("rt1", "famA", n)
		noErr(t, "PutRefresh", s.PutRefresh(ctx, r1))
		mustErr(t, "PutRefresh same hash", s.PutRefresh(ctx, r1), ErrConflict)
		got, err := s.LookupRefresh(ctx, r1.Hash)
		noErr(t, "LookupRefresh", err)
		if d := cmp.Diff(r1, got); d != "" {
			t.Fatalf("LookupRefresh (-put +got):\n%s", d)
		}

		// A next token of another family is refused and rotates nothing.
		if _, err := s.RotateRefresh(ctx, r1.Hash, testRefresh("rtX", "famOther", n), n); err == nil {
			t.Fatal("RotateRefresh into another family succeeded")
		}
		if _, err := s.LookupRefresh(ctx, r1.Hash); err != nil {
			t.Fatalf("r1 after a refused rotation: %v", err)
		}

		r2 := testRefresh("rt2", "famA", n.Add(time.Second))
		old, err := s.RotateRefresh(ctx, r1.Hash, r2, n.Add(time.Second))
		noErr(t, "RotateRefresh", err)
		if d := cmp.Diff(r1, old); d != "" {
			t.Fatalf("RotateRefresh returned (-r1 +got):\n%s", d)
		}
		got, err = s.LookupRefresh(ctx, r2.Hash)
		noErr(t, "LookupRefresh r2", err)
		if d := cmp.Diff(r2, got); d != "" {
			t.Fatalf("LookupRefresh r2 (-want +got):\n%s", d)
		}
		_, err = s.LookupRefresh(ctx, r1.Hash)
		mustErr(t, "LookupRefresh of a rotated token", err, ErrUsed)
		if rev, err := s.FamilyRevoked(ctx, "famA"); err != nil || rev {
			t.Fatalf("FamilyRevoked before reuse = %v, %v", rev, err)
		}

		// Reuse: presenting r1 again revokes the family.
		before := now().Add(-time.Second)
		old, err = s.RotateRefresh(ctx, r1.Hash, testRefresh("rt3", "famA", n), n.Add(2*time.Second))
		mustErr(t, "RotateRefresh reused", err, ErrReused)
		if old.FamilyID != "famA" {
			t.Fatalf("reuse returned %+v, want the old row", old)
		}
		if rev, err := s.FamilyRevoked(ctx, "famA"); err != nil || !rev {
			t.Fatalf("FamilyRevoked after reuse = %v, %v", rev, err)
		}
		_, err = s.LookupRefresh(ctx, r2.Hash)
		mustErr(t, "LookupRefresh after reuse", err, ErrRevoked)
		_, err = s.RotateRefresh(ctx, r2.Hash, testRefresh("rt4", "famA", n), n.Add(3*time.Second))
		mustErr(t, "RotateRefresh after reuse", err, ErrRevoked)
		_, err = s.LookupRefresh(ctx, h("rt3"))
		mustErr(t, "the token of the refused rotation", err, ErrNotFound)
		ids, err := s.RevokedFamiliesSince(ctx, before)
		noErr(t, "RevokedFamiliesSince", err)
		if d := cmp.Diff([]string{"famA"}, ids); d != "" {
			t.Fatalf("RevokedFamiliesSince (-want +got):\n%s", d)
		}
		ids, err = s.RevokedFamiliesSince(ctx, now().Add(time.Hour))
		noErr(t, "RevokedFamiliesSince later", err)
		if len(ids) != 0 {
			t.Fatalf("RevokedFamiliesSince(later) = %v", ids)
		}
	})
}

func TestContractRefreshExpiryAndRevocation(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		s := b.open(t)
		n := now()
		_, err := s.RotateRefresh(ctx, h("unknown"), testRefresh("x", "f", n), n)
		mustErr(t, "RotateRefresh unknown", err, ErrNotFound)
		_, err = s.LookupRefresh(ctx, h("unknown"))
		mustErr(t, "LookupRefresh unknown", err, ErrNotFound)

		exp := testRefresh("exp", "famE", n.Add(-48*time.Hour)) // expired 24h ago
		noErr(t, "PutRefresh expired", s.PutRefresh(ctx, exp))
		_, err = s.RotateRefresh(ctx, exp.Hash, testRefresh("exp2", "famE", n), n)
		mustErr(t, "RotateRefresh expired", err, ErrNotFound)
		_, err = s.LookupRefresh(ctx, exp.Hash)
		mustErr(t, "LookupRefresh expired", err, ErrNotFound)

		// RevokeFamily of a known family, and of one never stored (a
		// replayed code revokes the family its redemption was to create).
		r := testRefresh("rv", "famR", n)
		noErr(t, "PutRefresh", s.PutRefresh(ctx, r))
		noErr(t, "RevokeFamily", s.RevokeFamily(ctx, "famR"))
		noErr(t, "RevokeFamily again", s.RevokeFamily(ctx, "famR"))
		_, err = s.RotateRefresh(ctx, r.Hash, testRefresh("rv2", "famR", n), n)
		mustErr(t, "RotateRefresh revoked", err, ErrRevoked)
		_, err = s.LookupRefresh(ctx, r.Hash)
		mustErr(t, "LookupRefresh revoked", err, ErrRevoked)

		if rev, err := s.FamilyRevoked(ctx, "never-stored"); err != nil || rev {
			t.Fatalf("FamilyRevoked(unknown) = %v, %v; want false", rev, err)
		}
		noErr(t, "RevokeFamily unknown", s.RevokeFamily(ctx, "famCode"))
		if rev, err := s.FamilyRevoked(ctx, "famCode"); err != nil || !rev {
			t.Fatalf("FamilyRevoked(revoked before first token) = %v, %v", rev, err)
		}
		// The redemption's token, stored after the replay revoked the
		// family, never works.
		late := testRefresh("late", "famCode", n)
		noErr(t, "PutRefresh into revoked family", s.PutRefresh(ctx, late))
		_, err = s.RotateRefresh(ctx, late.Hash, testRefresh("late2", "famCode", n), n)
		mustErr(t, "RotateRefresh in family revoked before its first token", err, ErrRevoked)
	})
}

func TestContractConsents(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		s := b.open(t)
		n := now()
		c := Consent{Issuer: "iss", Subject: "alice", ClientID: "c", Scope: "mcp", GrantedAt: n, ExpiresAt: n.Add(time.Hour)}
		noErr(t, "PutConsent", s.PutConsent(ctx, c))
		got, err := s.GetConsent(ctx, "iss", "alice", "c")
		noErr(t, "GetConsent", err)
		if d := cmp.Diff(c, got); d != "" {
			t.Fatalf("GetConsent (-put +got):\n%s", d)
		}
		c.Scope = "mcp offline_access"
		noErr(t, "PutConsent replace", s.PutConsent(ctx, c))
		if got, _ := s.GetConsent(ctx, "iss", "alice", "c"); got.Scope != c.Scope {
			t.Fatalf("replaced consent scope = %q", got.Scope)
		}
		for _, k := range [][3]string{{"iss", "bob", "c"}, {"iss", "alice", "d"}, {"other", "alice", "c"}} {
			_, err := s.GetConsent(ctx, k[0], k[1], k[2])
			mustErr(t, fmt.Sprint("GetConsent ", k), err, ErrNotFound)
		}
		expired := Consent{Issuer: "iss", Subject: "alice", ClientID: "e", Scope: "mcp", GrantedAt: n.Add(-2 * time.Hour), ExpiresAt: n.Add(-time.Hour)}
		noErr(t, "PutConsent expired", s.PutConsent(ctx, expired))
		_, err = s.GetConsent(ctx, "iss", "alice", "e")
		mustErr(t, "GetConsent expired", err, ErrNotFound)
		forever := Consent{Issuer: "iss", Subject: "alice", ClientID: "f", Scope: "mcp", GrantedAt: n}
		noErr(t, "PutConsent without expiry", s.PutConsent(ctx, forever))
		_, err = s.GetConsent(ctx, "iss", "alice", "f")
		noErr(t, "GetConsent without expiry", err)
	})
}

func testSession(id, subject string, n time.Time) IdPSession {
	return IdPSession{ID: id, Issuer: "https://idp", Subject: subject, Claims: []byte(`{"sub":"` + subject + `","roles":["sales"]}`), Kind: "login",
		AccessToken: "idp-at-" + id, RefreshToken: "idp-rt-" + id, IDToken: "idp-idt-" + id, TokenExpiry: n.Add(time.Hour), CreatedAt: n, UpdatedAt: n}
}

func TestContractIdPSessions(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		s := b.open(t)
		n := now()
		ss := testSession("s1", "alice", n)
		noErr(t, "PutIdPSession", s.PutIdPSession(ctx, ss))
		got, err := s.GetIdPSession(ctx, "s1")
		noErr(t, "GetIdPSession", err)
		if d := cmp.Diff(ss, got); d != "" {
			t.Fatalf("GetIdPSession (-put +got):\n%s", d)
		}
		// Replace (a refresh at the IdP); CreatedAt stays the first one.
		upd := ss
		upd.AccessToken, upd.RefreshToken, upd.IDToken = "at-2", "", ""
		upd.Claims, upd.UpdatedAt, upd.CreatedAt = []byte(`{"sub":"alice"}`), n.Add(time.Minute), n.Add(time.Minute)
		noErr(t, "PutIdPSession replace", s.PutIdPSession(ctx, upd))
		got, err = s.GetIdPSession(ctx, "s1")
		noErr(t, "GetIdPSession", err)
		upd.CreatedAt = n
		if d := cmp.Diff(upd, got); d != "" {
			t.Fatalf("replaced session (-want +got):\n%s", d)
		}
		// The id of another user's session cannot be overwritten.
		mustErr(t, "PutIdPSession of another user", s.PutIdPSession(ctx, testSession("s1", "mallory", n)), ErrConflict)
		_, err = s.GetIdPSession(ctx, "nope")
		mustErr(t, "GetIdPSession unknown", err, ErrNotFound)

		// An ID-JAG session, revoked on put.
		jag := testSession("s2", "bob", n)
		jag.Kind, jag.RefreshToken, jag.IDToken, jag.Revoked = "id_jag", "", "", true
		noErr(t, "PutIdPSession revoked", s.PutIdPSession(ctx, jag))
		got, err = s.GetIdPSession(ctx, "s2")
		mustErr(t, "GetIdPSession revoked", err, ErrRevoked)
		if !got.Revoked || got.Kind != "id_jag" {
			t.Fatalf("revoked session returned %+v", got)
		}
		// Revocation sticks: a refresh that raced it cannot undo it.
		jag.Revoked = false
		noErr(t, "PutIdPSession over revoked", s.PutIdPSession(ctx, jag))
		_, err = s.GetIdPSession(ctx, "s2")
		mustErr(t, "GetIdPSession after put over revoked", err, ErrRevoked)
	})
}

func TestContractRevokeUser(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		s := b.open(t)
		n := now()
		for _, u := range []string{"alice", "bob"} {
			noErr(t, "PutIdPSession", s.PutIdPSession(ctx, testSession("sess-"+u, u, n)))
			r := testRefresh("rt-"+u, "fam-"+u, n)
			r.Subject, r.SessionID = u, "sess-"+u
			noErr(t, "PutRefresh", s.PutRefresh(ctx, r))
			noErr(t, "PutConsent", s.PutConsent(ctx, Consent{Issuer: "https://idp", Subject: u, ClientID: "c", Scope: "mcp", GrantedAt: n}))
			c := testCode("code-"+u, n)
			c.SessionID = "sess-" + u
			noErr(t, "PutCode", s.PutCode(ctx, c))
		}
		noErr(t, "RevokeUser", s.RevokeUser(ctx, "https://idp", "alice"))
		_, err := s.GetIdPSession(ctx, "sess-alice")
		mustErr(t, "alice's session", err, ErrRevoked)
		_, err = s.LookupRefresh(ctx, h("rt-alice"))
		mustErr(t, "alice's refresh token", err, ErrRevoked)
		_, err = s.RotateRefresh(ctx, h("rt-alice"), testRefresh("x", "fam-alice", n), n)
		mustErr(t, "rotating alice's refresh token", err, ErrRevoked)
		if rev, _ := s.FamilyRevoked(ctx, "fam-alice"); !rev {
			t.Fatal("alice's family not revoked")
		}
		_, err = s.GetConsent(ctx, "https://idp", "alice", "c")
		mustErr(t, "alice's consent", err, ErrNotFound)
		_, err = s.TakeCode(ctx, h("code-alice"), n)
		mustErr(t, "alice's unredeemed code", err, ErrNotFound)

		if _, err := s.GetIdPSession(ctx, "sess-bob"); err != nil {
			t.Fatalf("bob's session: %v", err)
		}
		if _, err := s.LookupRefresh(ctx, h("rt-bob")); err != nil {
			t.Fatalf("bob's refresh token: %v", err)
		}
		if _, err := s.GetConsent(ctx, "https://idp", "bob", "c"); err != nil {
			t.Fatalf("bob's consent: %v", err)
		}
		if _, err := s.TakeCode(ctx, h("code-bob"), n); err != nil {
			t.Fatalf("bob's code: %v", err)
		}
		// The same subject at another issuer is another user.
		noErr(t, "RevokeUser other issuer", s.RevokeUser(ctx, "https://other", "bob"))
		if _, err := s.GetIdPSession(ctx, "sess-bob"); err != nil {
			t.Fatalf("bob's session after revoking bob at another issuer: %v", err)
		}
	})
}

func TestContractSigningKeys(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		s := b.open(t)
		n := now()
		keys, err := s.SigningKeys(ctx)
		noErr(t, "SigningKeys empty", err)
		if len(keys) != 0 {
			t.Fatalf("SigningKeys on an empty store = %d keys", len(keys))
		}
		k1 := SigningKey{ID: "kid1", Algorithm: "ES256", Private: []byte("pkcs8-one"), CreatedAt: n.Add(-time.Hour)}
		k2 := SigningKey{ID: "kid2", Algorithm: "ES256", Private: []byte("pkcs8-two"), CreatedAt: n}
		noErr(t, "PutSigningKey", s.PutSigningKey(ctx, k1))
		noErr(t, "PutSigningKey", s.PutSigningKey(ctx, k2))
		mustErr(t, "PutSigningKey again", s.PutSigningKey(ctx, k1), ErrConflict)
		noErr(t, "RetireSigningKey", s.RetireSigningKey(ctx, "kid1", n))
		noErr(t, "RetireSigningKey again keeps the first time", s.RetireSigningKey(ctx, "kid1", n.Add(time.Hour)))
		mustErr(t, "RetireSigningKey unknown", s.RetireSigningKey(ctx, "nope", n), ErrNotFound)
		keys, err = s.SigningKeys(ctx)
		noErr(t, "SigningKeys", err)
		k1.RetiredAt = n
		if d := cmp.Diff([]SigningKey{k2, k1}, keys); d != "" {
			t.Fatalf("SigningKeys, newest first (-want +got):\n%s", d)
		}
	})
}

func TestContractUseJTI(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		s := b.open(t)
		n := now()
		for i, c := range []struct {
			iss, jti string
			exp      time.Time
			want     bool
		}{
			{"iss", "j1", n.Add(time.Minute), true},
			{"iss", "j1", n.Add(time.Minute), false}, // replay
			{"other", "j1", n.Add(time.Minute), true},
			{"iss", "j2", n.Add(-time.Minute), true},
			{"iss", "j2", n.Add(time.Minute), true}, // the first record expired
			{"iss", "j2", n.Add(time.Minute), false},
		} {
			got, err := s.UseJTI(ctx, c.iss, c.jti, c.exp)
			noErr(t, "UseJTI", err)
			if got != c.want {
				t.Fatalf("step %d: UseJTI(%s, %s) = %v, want %v", i, c.iss, c.jti, got, c.want)
			}
		}
	})
}

// count returns the number of rows of a table, read directly.
func count(t *testing.T, s Store, table string) int {
	t.Helper()
	db, _ := raw(s)
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestContractSweep(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		s := b.open(t)
		n := now()
		past := n.Add(-48 * time.Hour)
		// Expired: a code, a family with its token, a consent, a JTI.
		noErr(t, "PutCode", s.PutCode(ctx, testCode("old", past)))
		noErr(t, "PutRefresh", s.PutRefresh(ctx, testRefresh("old", "famOld", past)))
		noErr(t, "PutConsent", s.PutConsent(ctx, Consent{Issuer: "i", Subject: "s", ClientID: "old", GrantedAt: past, ExpiresAt: past.Add(time.Hour)}))
		_, err := s.UseJTI(ctx, "i", "old", past)
		noErr(t, "UseJTI", err)
		// Live: the same of each, plus a consent without expiry and a
		// family revoked just now without tokens.
		noErr(t, "PutCode", s.PutCode(ctx, testCode("new", n)))
		noErr(t, "PutRefresh", s.PutRefresh(ctx, testRefresh("new", "famNew", n)))
		noErr(t, "PutConsent", s.PutConsent(ctx, Consent{Issuer: "i", Subject: "s", ClientID: "new", GrantedAt: n, ExpiresAt: n.Add(time.Hour)}))
		noErr(t, "PutConsent", s.PutConsent(ctx, Consent{Issuer: "i", Subject: "s", ClientID: "forever", GrantedAt: past}))
		_, err = s.UseJTI(ctx, "i", "new", n.Add(time.Hour))
		noErr(t, "UseJTI", err)
		noErr(t, "RevokeFamily", s.RevokeFamily(ctx, "famRevoked"))

		noErr(t, "Sweep", s.Sweep(ctx, n))
		for table, want := range map[string]int{"codes": 1, "refresh_tokens": 1, "refresh_families": 2, "consents": 2, "jtis": 1} {
			if got := count(t, s, table); got != want {
				t.Errorf("after Sweep: %s has %d rows, want %d", table, got, want)
			}
		}
		if _, err := s.TakeCode(ctx, h("new"), n); err != nil {
			t.Errorf("live code after Sweep: %v", err)
		}
		if rev, _ := s.FamilyRevoked(ctx, "famRevoked"); !rev {
			t.Error("a family revoked just now was swept")
		}
		// After the retention the revoked family goes too.
		noErr(t, "Sweep later", s.Sweep(ctx, n.Add(RevokedFamilyRetention+25*time.Hour)))
		if got := count(t, s, "refresh_families"); got != 0 {
			t.Errorf("refresh_families after everything expired: %d rows", got)
		}
		noErr(t, "Ping", s.Ping(ctx))
	})
}

// TestContractConcurrentRotate: N rotations of one refresh token race,
// from two Store instances (two replicas): exactly one wins, every other
// one gets ErrReused or ErrRevoked.
func TestContractConcurrentRotate(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		replicas := []Store{b.open(t), b.open(t)}
		n := now()
		for round := range 5 {
			fam := fmt.Sprintf("fam%d", round)
			r := testRefresh(fam+"-rt", fam, n)
			noErr(t, "PutRefresh", replicas[0].PutRefresh(ctx, r))
			const N = 12
			errs := make([]error, N)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range N {
				wg.Go(func() {
					<-start
					_, errs[i] = replicas[i%2].RotateRefresh(ctx, r.Hash, testRefresh(fmt.Sprintf("%s-next%d", fam, i), fam, n), n)
				})
			}
			close(start)
			wg.Wait()
			wins := 0
			for i, err := range errs {
				switch {
				case err == nil:
					wins++
				case errors.Is(err, ErrReused), errors.Is(err, ErrRevoked):
				default:
					t.Errorf("round %d, rotation %d: unexpected error %v", round, i, err)
				}
			}
			if wins != 1 {
				t.Fatalf("round %d: %d rotations won, want exactly 1 (errors: %v)", round, wins, errs)
			}
			if rev, _ := replicas[1].FamilyRevoked(ctx, fam); !rev {
				t.Fatalf("round %d: the losing rotations did not revoke the family", round)
			}
		}
	})
}

// TestContractConcurrentTakeCode: N redemptions of one code race from two
// replicas: exactly one gets the code, the others ErrUsed.
func TestContractConcurrentTakeCode(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		replicas := []Store{b.open(t), b.open(t)}
		n := now()
		for round := range 5 {
			c := testCode(fmt.Sprint("race", round), n)
			noErr(t, "PutCode", replicas[0].PutCode(ctx, c))
			const N = 12
			errs := make([]error, N)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range N {
				wg.Go(func() {
					<-start
					_, errs[i] = replicas[i%2].TakeCode(ctx, c.Hash, n)
				})
			}
			close(start)
			wg.Wait()
			wins := 0
			for i, err := range errs {
				switch {
				case err == nil:
					wins++
				case errors.Is(err, ErrUsed):
				default:
					t.Errorf("round %d, take %d: unexpected error %v", round, i, err)
				}
			}
			if wins != 1 {
				t.Fatalf("round %d: %d takes won, want exactly 1", round, wins)
			}
		}
	})
}

// TestContractSealedAtRest reads the raw rows: no IdP token, claim or
// private key is stored in the clear.
func TestContractSealedAtRest(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		s := b.open(t)
		n := now()
		ss := testSession("sess-secret", "alice", n)
		ss.AccessToken, ss.RefreshToken, ss.IDToken = "PLAINTEXT-ACCESS-TOKEN", "PLAINTEXT-REFRESH-TOKEN", "PLAINTEXT-ID-TOKEN"
		ss.Claims = []byte(`{"email":"PLAINTEXT-CLAIM@example.com"}`)
		noErr(t, "PutIdPSession", s.PutIdPSession(ctx, ss))
		noErr(t, "PutSigningKey", s.PutSigningKey(ctx, SigningKey{ID: "kid", Algorithm: "ES256", Private: []byte("PLAINTEXT-PRIVATE-KEY"), CreatedAt: n}))

		db, _ := raw(s)
		var cells [][]byte
		for _, q := range []string{
			`SELECT claims, access_token, refresh_token, id_token FROM idp_sessions`,
			`SELECT private, private, private, private FROM signing_keys`,
		} {
			var c [4][]byte
			if err := db.QueryRow(q).Scan(&c[0], &c[1], &c[2], &c[3]); err != nil {
				t.Fatal(err)
			}
			cells = append(cells, c[:]...)
		}
		for i, c := range cells {
			if bytes.Contains(c, []byte("PLAINTEXT")) {
				t.Errorf("cell %d stored in the clear: %q", i, c)
			}
			if len(c) < 2 || c[0] != sealVersion || string(c[2:2+int(c[1])]) != "k1" {
				t.Errorf("cell %d is not sealed under k1: %x", i, c)
			}
		}
		if b.driver == DriverSQLite {
			// The whole file (and its WAL), not only the columns read.
			for _, suffix := range []string{"", "-wal"} {
				data, err := readFileIfExists(b.cfg.Path + suffix)
				noErr(t, "reading the database file", err)
				if bytes.Contains(data, []byte("PLAINTEXT")) {
					t.Errorf("%s holds plaintext", b.cfg.Path+suffix)
				}
			}
		}
	})
}

// TestContractKeyRotation: the new key first and the old one kept opens
// old rows and seals new ones with the new key; without the old key the
// store says which key is missing; a tampered or moved value does not
// open.
func TestContractKeyRotation(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		n := now()
		old := testSession("old", "alice", n)
		s1 := b.open(t, testKey1)
		noErr(t, "PutIdPSession under k1", s1.PutIdPSession(ctx, old))
		noErr(t, "PutSigningKey under k1", s1.PutSigningKey(ctx, SigningKey{ID: "kid", Algorithm: "ES256", Private: []byte("der"), CreatedAt: n}))
		s1.Close()

		s2 := b.open(t, testKey2, testKey1)
		got, err := s2.GetIdPSession(ctx, "old")
		noErr(t, "GetIdPSession of a k1 row with [k2, k1]", err)
		if got.AccessToken != old.AccessToken {
			t.Fatalf("AccessToken = %q", got.AccessToken)
		}
		fresh := testSession("new", "alice", n)
		noErr(t, "PutIdPSession under k2", s2.PutIdPSession(ctx, fresh))
		db, q := raw(s2)
		var sealed []byte
		noErr(t, "raw", db.QueryRow(q(`SELECT access_token FROM idp_sessions WHERE id = ?`), "new").Scan(&sealed))
		if string(sealed[2:2+int(sealed[1])]) != "k2" {
			t.Fatalf("new row sealed under %q, want k2", sealed[2:2+int(sealed[1])])
		}
		s2.Close()

		s3 := b.open(t, testKey2)
		_, err = s3.GetIdPSession(ctx, "old")
		if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), `"k1"`) || !strings.Contains(err.Error(), "idp_sessions") {
			t.Fatalf("GetIdPSession of a k1 row without k1: %v; want ErrUnknownKey naming k1 and the table", err)
		}
		_, err = s3.SigningKeys(ctx)
		mustErr(t, "SigningKeys without k1", err, ErrUnknownKey)
		if _, err := s3.GetIdPSession(ctx, "new"); err != nil {
			t.Fatalf("k2 row with [k2]: %v", err)
		}

		// Tamper with one byte of a sealed value.
		db, q = raw(s3)
		tampered := bytes.Clone(sealed)
		tampered[len(tampered)-1] ^= 1
		_, err = db.Exec(q(`UPDATE idp_sessions SET access_token = ? WHERE id = ?`), tampered, "new")
		noErr(t, "tampering", err)
		_, err = s3.GetIdPSession(ctx, "new")
		if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "does not open") {
			t.Fatalf("tampered value: %v, want a does-not-open error", err)
		}
		if strings.Contains(err.Error(), "new") && strings.Contains(err.Error(), "id = ") {
			t.Fatalf("error names the row: %v", err)
		}
		// A valid sealed value moved into another row does not open either.
		noErr(t, "PutIdPSession", s3.PutIdPSession(ctx, testSession("victim", "bob", n)))
		_, err = db.Exec(q(`UPDATE idp_sessions SET access_token = ? WHERE id = ?`), sealed, "victim")
		noErr(t, "moving", err)
		_, err = s3.GetIdPSession(ctx, "victim")
		if err == nil || !strings.Contains(err.Error(), "does not open") {
			t.Fatalf("value moved from another row: %v, want a does-not-open error", err)
		}
	})
}

// TestContractMigrations: Open is idempotent, records the version, and
// replicas opening a fresh database at once all succeed; a database of a
// newer schema is refused.
func TestContractMigrations(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		const N = 4
		errs := make([]error, N)
		stores := make([]Store, N)
		var wg sync.WaitGroup
		for i := range N {
			wg.Go(func() { stores[i], errs[i] = b.tryOpen() })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("replica %d opening a fresh database: %v", i, err)
			}
			defer stores[i].Close()
		}
		s := b.open(t)
		db, q := raw(s)
		var n int
		noErr(t, "schema_migrations", db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n))
		if n != len(migrations) {
			t.Fatalf("schema_migrations has %d rows, want %d", n, len(migrations))
		}
		_, err := db.Exec(q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`), SchemaVersion()+1, "from the future", 0)
		noErr(t, "insert", err)
		_, err = b.tryOpen()
		if err == nil || !strings.Contains(err.Error(), "newer") {
			t.Fatalf("Open of a newer schema: %v, want an error saying it is newer", err)
		}
	})
}
