package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// RevokedFamilyRetention is how long a revoked refresh family is remembered
// after its revocation even when it has no live token (a replayed code
// revokes a family that may never have had a refresh token): access tokens
// of the family are refused at least that long.
const RevokedFamilyRetention = 24 * time.Hour

// dialect is what differs between the drivers. Queries are written once,
// with ? placeholders and {{…}} markers that rebind replaces.
type dialect struct {
	name string
	// numbered: $1, $2 … placeholders (PostgreSQL) instead of ?.
	numbered bool
	// markers replaced in queries and migrations.
	markers *strings.Replacer
	// conflict reports a unique-key violation.
	conflict func(error) bool
	// retryable reports an error after which the whole transaction may be
	// run again (serialization failure, deadlock).
	retryable func(error) bool
	// lockMigrations runs in the migration transaction before anything
	// else, serializing replicas that start at once.
	lockMigrations string
}

// sqlStore implements Store over database/sql; both drivers use it.
type sqlStore struct {
	db     *sql.DB
	d      *dialect
	sealer *Sealer
	// writeSem serializes writes (SQLite: one writer; nil for PostgreSQL,
	// which locks rows).
	writeSem chan struct{}
	queries  sync.Map // original query → rebound query
	now      func() time.Time

	// Grants (grants_sql.go): UpdateGrant's in-process lock per grant, and
	// (PostgreSQL) the bound on UpdateGrants holding a connection.
	grantLocks keyedLocks
	grantSem   chan struct{}
	// namedLocks: Lock's in-process part (lock.go).
	namedLocks keyedLocks
	// Notify/Listen (notify.go). life ends at Close; it ends every Listen.
	life     context.Context
	stop     context.CancelFunc
	hub      *hub            // SQLite: in-process fan-out
	pgConfig *pgx.ConnConfig // PostgreSQL: for the listening connections
	schema   string          // PostgreSQL: current_schema(), scopes channel names
}

var _ Store = (*sqlStore)(nil)

// q rebinds a query for the dialect (cached).
func (s *sqlStore) q(query string) string {
	if v, ok := s.queries.Load(query); ok {
		return v.(string)
	}
	r := rebind(s.d, query)
	s.queries.Store(query, r)
	return r
}

func rebind(d *dialect, query string) string {
	query = d.markers.Replace(query)
	if !d.numbered {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// lockWrite takes the writer slot (SQLite); the returned func releases it.
func (s *sqlStore) lockWrite(ctx context.Context) (func(), error) {
	if s.writeSem == nil {
		return func() {}, nil
	}
	select {
	case s.writeSem <- struct{}{}:
		return func() { <-s.writeSem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// exec runs one write statement and returns the rows it affected.
func (s *sqlStore) exec(ctx context.Context, query string, args ...any) (int64, error) {
	unlock, err := s.lockWrite(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	res, err := s.db.ExecContext(ctx, s.q(query), args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// commitErr, returned by a transaction function, commits the transaction
// and then returns err (a refresh-token reuse commits its family's
// revocation and reports ErrReused).
type commitErr struct{ err error }

func (c commitErr) Error() string { return c.err.Error() }

// tx runs fn in a write transaction (SQLite: BEGIN IMMEDIATE under the
// writer slot; PostgreSQL: READ COMMITTED with row locks taken by fn),
// retrying a few times when the database reports a serialization failure
// or deadlock.
func (s *sqlStore) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	unlock, err := s.lockWrite(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	for attempt := 0; ; attempt++ {
		err := s.tx1(ctx, fn)
		if err != nil && attempt < 4 && s.d.retryable(err) && ctx.Err() == nil {
			time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
			continue
		}
		return err
	}
}

func (s *sqlStore) tx1(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	err = fn(tx)
	var keep commitErr
	if err != nil && !errors.As(err, &keep) {
		_ = tx.Rollback()
		return err
	}
	if cerr := tx.Commit(); cerr != nil {
		return cerr
	}
	return keep.err
}

// Times are stored as Unix microseconds; the zero time as 0.
func ts(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromTS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (s *sqlStore) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrUsed), errors.Is(err, ErrReused),
		errors.Is(err, ErrRevoked), errors.Is(err, ErrConflict), errors.Is(err, ErrUnknownKey):
		return err
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	case s.d.conflict(err):
		return fmt.Errorf("%w: %s", ErrConflict, op)
	}
	return fmt.Errorf("store (%s): %s: %w", s.d.name, op, err)
}

// ---------------------------------------------------------------- clients

func (s *sqlStore) PutClient(ctx context.Context, c Client) error {
	last := c.LastUsedAt
	if last.IsZero() {
		last = c.CreatedAt
	}
	_, err := s.exec(ctx, `INSERT INTO clients (id, metadata, secret_hash, created_at, last_used_at) VALUES (?, ?, ?, ?, ?)`,
		c.ID, orEmpty(c.Metadata), orEmpty(c.SecretHash), ts(c.CreatedAt), ts(last))
	return s.wrap("put client", err)
}

func (s *sqlStore) GetClient(ctx context.Context, id string) (Client, error) {
	var c Client
	var created, last int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT id, metadata, secret_hash, created_at, last_used_at FROM clients WHERE id = ?`), id).
		Scan(&c.ID, &c.Metadata, &c.SecretHash, &created, &last)
	if err != nil {
		return Client{}, s.wrap("get client", err)
	}
	c.SecretHash = nilIfEmpty(c.SecretHash)
	c.CreatedAt, c.LastUsedAt = fromTS(created), fromTS(last)
	return c, nil
}

// touchEvery: TouchClient writes at most once a minute per client.
const touchEvery = time.Minute

// TouchClient sets the client's LastUsedAt to at unless it was set less
// than a minute before at (so a busy client costs one write a minute).
// ErrNotFound for an unknown client.
func (s *sqlStore) TouchClient(ctx context.Context, id string, at time.Time) error {
	n, err := s.exec(ctx, `UPDATE clients SET last_used_at = ? WHERE id = ? AND last_used_at < ?`, ts(at), id, ts(at.Add(-touchEvery)))
	if err != nil {
		return s.wrap("touch client", err)
	}
	if n == 0 {
		var one int
		if err := s.db.QueryRowContext(ctx, s.q(`SELECT 1 FROM clients WHERE id = ?`), id).Scan(&one); err != nil {
			return s.wrap("touch client", err)
		}
	}
	return nil
}

// DeleteClientsUnusedSince deletes the registrations unused since t, with
// their refresh families (and tokens), codes and consents.
func (s *sqlStore) DeleteClientsUnusedSince(ctx context.Context, t time.Time) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// Lock the rows first: a client touched meanwhile waits, then
		// finds itself deleted, rather than losing its families only.
		rows, err := tx.QueryContext(ctx, s.q(`SELECT id FROM clients WHERE last_used_at < ?{{forupdate}}`), ts(t))
		if err != nil {
			return err
		}
		var count int64
		for rows.Next() {
			count++
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if count == 0 {
			n = 0
			return nil
		}
		for _, q := range []string{
			`DELETE FROM refresh_families WHERE client_id IN (SELECT id FROM clients WHERE last_used_at < ?)`,
			`DELETE FROM codes WHERE client_id IN (SELECT id FROM clients WHERE last_used_at < ?)`,
			`DELETE FROM consents WHERE client_id IN (SELECT id FROM clients WHERE last_used_at < ?)`,
		} {
			if _, err := tx.ExecContext(ctx, s.q(q), ts(t)); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM clients WHERE last_used_at < ?`), ts(t))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), s.wrap("delete unused clients", err)
}

// ---------------------------------------------------------------- codes

func (s *sqlStore) PutCode(ctx context.Context, c Code) error {
	_, err := s.exec(ctx, `INSERT INTO codes (hash, client_id, session_id, redirect_uri, code_challenge, resource, scope, family_id, expires_at, used_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`,
		c.Hash, c.ClientID, c.SessionID, c.RedirectURI, c.CodeChallenge, c.Resource, c.Scope, c.FamilyID, ts(c.ExpiresAt))
	return s.wrap("put code", err)
}

const codeColumns = `hash, client_id, session_id, redirect_uri, code_challenge, resource, scope, family_id, expires_at`

func scanCode(row interface{ Scan(...any) error }, extra ...any) (Code, error) {
	var c Code
	var exp int64
	err := row.Scan(append([]any{&c.Hash, &c.ClientID, &c.SessionID, &c.RedirectURI, &c.CodeChallenge, &c.Resource, &c.Scope, &c.FamilyID, &exp}, extra...)...)
	c.ExpiresAt = fromTS(exp)
	return c, err
}

// TakeCode marks the code used in one conditional UPDATE (atomic in both
// databases: a concurrent second UPDATE of the row sees it used). A code
// already used returns ErrUsed with the row even after it expired (until
// Sweep deletes it), so a late replay still revokes what it issued; an
// unused expired code is ErrNotFound.
func (s *sqlStore) TakeCode(ctx context.Context, hash []byte, now time.Time) (Code, error) {
	unlock, err := s.lockWrite(ctx)
	if err != nil {
		return Code{}, err
	}
	c, err := scanCode(s.db.QueryRowContext(ctx, s.q(`UPDATE codes SET used_at = ? WHERE hash = ? AND used_at = 0 AND expires_at > ? RETURNING `+codeColumns), ts(now), hash, ts(now)))
	unlock()
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Code{}, s.wrap("take code", err)
	}
	var used int64
	c, err = scanCode(s.db.QueryRowContext(ctx, s.q(`SELECT `+codeColumns+`, used_at FROM codes WHERE hash = ?`), hash), &used)
	switch {
	case err != nil:
		return Code{}, s.wrap("take code", err)
	case used != 0:
		return c, ErrUsed
	default:
		return Code{}, ErrNotFound // expired
	}
}

// ---------------------------------------------------------------- refresh tokens

const refreshColumns = `t.hash, t.family_id, t.client_id, t.session_id, t.issuer, t.subject, t.scope, t.resource, t.issued_at, t.expires_at`

// refreshState is a refresh row with its token's and family's state.
type refreshState struct {
	Refresh
	rotated bool
	revoked bool
}

func scanRefresh(row interface{ Scan(...any) error }) (refreshState, error) {
	var r refreshState
	var issued, exp, rotated, revoked int64
	err := row.Scan(&r.Hash, &r.FamilyID, &r.ClientID, &r.SessionID, &r.Issuer, &r.Subject, &r.Scope, &r.Resource, &issued, &exp, &rotated, &revoked)
	r.IssuedAt, r.ExpiresAt = fromTS(issued), fromTS(exp)
	r.rotated, r.revoked = rotated != 0, revoked != 0
	return r, err
}

const selectRefresh = `SELECT ` + refreshColumns + `, t.rotated_at, f.revoked_at FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.hash = ?`

// upsertFamily records the family (or extends it) in tx.
func (s *sqlStore) upsertFamily(ctx context.Context, tx *sql.Tx, r Refresh) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO refresh_families (id, client_id, issuer, subject, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, 0)
		ON CONFLICT (id) DO UPDATE SET client_id = excluded.client_id, issuer = excluded.issuer, subject = excluded.subject,
		expires_at = {{greatest}}(refresh_families.expires_at, excluded.expires_at)`),
		r.FamilyID, r.ClientID, r.Issuer, r.Subject, ts(r.ExpiresAt))
	return err
}

func (s *sqlStore) insertRefresh(ctx context.Context, tx *sql.Tx, r Refresh) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO refresh_tokens (hash, family_id, client_id, session_id, issuer, subject, scope, resource, issued_at, expires_at, rotated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`),
		r.Hash, r.FamilyID, r.ClientID, r.SessionID, r.Issuer, r.Subject, r.Scope, r.Resource, ts(r.IssuedAt), ts(r.ExpiresAt))
	return err
}

// PutRefresh records a family's token. A family revoked already (a code
// replayed before its first redemption finished) stays revoked: the token
// is stored but never rotates.
func (s *sqlStore) PutRefresh(ctx context.Context, r Refresh) error {
	if r.FamilyID == "" || len(r.Hash) == 0 {
		return errors.New("store: put refresh: FamilyID and Hash are required")
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.upsertFamily(ctx, tx, r); err != nil {
			return err
		}
		return s.insertRefresh(ctx, tx, r)
	})
	return s.wrap("put refresh", err)
}

// RotateRefresh: the family row is locked first (PostgreSQL: SELECT … FOR
// UPDATE; SQLite: the one writer), then the token is read again and
// decided on, so that of concurrent rotations of one token exactly one
// wins and the others see it rotated (reuse: the family is revoked).
func (s *sqlStore) RotateRefresh(ctx context.Context, oldHash []byte, next Refresh, now time.Time) (Refresh, error) {
	var old Refresh
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var family string
		if err := tx.QueryRowContext(ctx, s.q(`SELECT family_id FROM refresh_tokens WHERE hash = ?`), oldHash).Scan(&family); err != nil {
			return err
		}
		var revokedAt int64
		if err := tx.QueryRowContext(ctx, s.q(`SELECT revoked_at FROM refresh_families WHERE id = ?{{forupdate}}`), family).Scan(&revokedAt); err != nil {
			return err
		}
		r, err := scanRefresh(tx.QueryRowContext(ctx, s.q(selectRefresh), oldHash))
		if err != nil {
			return err
		}
		old = r.Refresh
		switch {
		case r.revoked:
			return ErrRevoked
		case r.rotated:
			if err := s.revokeFamilyTx(ctx, tx, family, s.now()); err != nil {
				return err
			}
			return commitErr{ErrReused}
		case !r.ExpiresAt.After(now):
			old = Refresh{}
			return ErrNotFound
		case next.FamilyID != family:
			old = Refresh{}
			return fmt.Errorf("store: rotate refresh: next.FamilyID differs from the family of the token presented")
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE refresh_tokens SET rotated_at = ? WHERE hash = ?`), ts(now), oldHash); err != nil {
			return err
		}
		if err := s.upsertFamily(ctx, tx, next); err != nil {
			return err
		}
		return s.insertRefresh(ctx, tx, next)
	})
	if err != nil && !errors.Is(err, ErrReused) && !errors.Is(err, ErrRevoked) {
		old = Refresh{}
	}
	return old, s.wrap("rotate refresh", err)
}

// LookupRefresh returns the row of a refresh token without rotating it.
// Besides the row: ErrRevoked when its family is revoked, ErrUsed when the
// token was rotated already (no longer current; the family is not revoked
// by a lookup), ErrNotFound when unknown or expired (no row).
func (s *sqlStore) LookupRefresh(ctx context.Context, hash []byte) (Refresh, error) {
	r, err := scanRefresh(s.db.QueryRowContext(ctx, s.q(selectRefresh), hash))
	switch {
	case err != nil:
		return Refresh{}, s.wrap("lookup refresh", err)
	case r.revoked:
		return r.Refresh, ErrRevoked
	case !r.ExpiresAt.After(s.now()):
		return Refresh{}, ErrNotFound
	case r.rotated:
		return r.Refresh, ErrUsed
	}
	return r.Refresh, nil
}

func (s *sqlStore) revokeFamilyTx(ctx context.Context, tx *sql.Tx, family string, now time.Time) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO refresh_families (id, client_id, issuer, subject, expires_at, revoked_at) VALUES (?, '', '', '', ?, ?)
		ON CONFLICT (id) DO UPDATE SET
		revoked_at = CASE WHEN refresh_families.revoked_at = 0 THEN excluded.revoked_at ELSE refresh_families.revoked_at END,
		expires_at = {{greatest}}(refresh_families.expires_at, excluded.expires_at)`),
		family, ts(now.Add(RevokedFamilyRetention)), ts(now))
	return err
}

// RevokeFamily revokes a family, known or not (a replayed code revokes the
// family its first redemption was to create). It is remembered at least
// RevokedFamilyRetention.
func (s *sqlStore) RevokeFamily(ctx context.Context, familyID string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error { return s.revokeFamilyTx(ctx, tx, familyID, s.now()) })
	return s.wrap("revoke family", err)
}

// FamilyRevoked: false for a family the store does not know.
func (s *sqlStore) FamilyRevoked(ctx context.Context, familyID string) (bool, error) {
	var revokedAt int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT revoked_at FROM refresh_families WHERE id = ?`), familyID).Scan(&revokedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, s.wrap("family revoked", err)
	}
	return revokedAt != 0, nil
}

func (s *sqlStore) RevokedFamiliesSince(ctx context.Context, t time.Time) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id FROM refresh_families WHERE revoked_at <> 0 AND revoked_at >= ? ORDER BY revoked_at, id`), ts(t))
	if err != nil {
		return nil, s.wrap("revoked families", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, s.wrap("revoked families", err)
		}
		ids = append(ids, id)
	}
	return ids, s.wrap("revoked families", rows.Err())
}

// ---------------------------------------------------------------- consents

func (s *sqlStore) PutConsent(ctx context.Context, c Consent) error {
	_, err := s.exec(ctx, `INSERT INTO consents (issuer, subject, client_id, scope, granted_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (issuer, subject, client_id) DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at, expires_at = excluded.expires_at`,
		c.Issuer, c.Subject, c.ClientID, c.Scope, ts(c.GrantedAt), ts(c.ExpiresAt))
	return s.wrap("put consent", err)
}

// GetConsent: ErrNotFound when there is none or it expired (a zero
// ExpiresAt never expires).
func (s *sqlStore) GetConsent(ctx context.Context, issuer, subject, clientID string) (Consent, error) {
	c := Consent{Issuer: issuer, Subject: subject, ClientID: clientID}
	var granted, exp int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT scope, granted_at, expires_at FROM consents WHERE issuer = ? AND subject = ? AND client_id = ?`), issuer, subject, clientID).
		Scan(&c.Scope, &granted, &exp)
	if err != nil {
		return Consent{}, s.wrap("get consent", err)
	}
	c.GrantedAt, c.ExpiresAt = fromTS(granted), fromTS(exp)
	if exp != 0 && !c.ExpiresAt.After(s.now()) {
		return Consent{}, ErrNotFound
	}
	return c, nil
}

// ---------------------------------------------------------------- IdP sessions

const sessionsTable = "idp_sessions"

// PutIdPSession inserts or replaces a session, sealing its tokens and
// claims. Revocation sticks: replacing a revoked session (a refresh that
// raced an admin purge) keeps it revoked. Replacing a session of another
// user (issuer, subject) is ErrConflict.
func (s *sqlStore) PutIdPSession(ctx context.Context, ss IdPSession) error {
	if ss.ID == "" {
		return errors.New("store: put IdP session: ID is required")
	}
	var sealed [4][]byte
	for i, f := range []struct {
		col string
		v   []byte
	}{{"claims", ss.Claims}, {"access_token", []byte(ss.AccessToken)}, {"refresh_token", []byte(ss.RefreshToken)}, {"id_token", []byte(ss.IDToken)}} {
		b, err := s.sealer.Seal(sessionsTable, f.col, ss.ID, f.v)
		if err != nil {
			return err
		}
		sealed[i] = b
	}
	revoked := 0
	if ss.Revoked {
		revoked = 1
	}
	n, err := s.exec(ctx, `INSERT INTO idp_sessions (id, issuer, subject, kind, claims, access_token, refresh_token, id_token, token_expiry, created_at, updated_at, revoked)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, claims = excluded.claims, access_token = excluded.access_token,
		refresh_token = excluded.refresh_token, id_token = excluded.id_token, token_expiry = excluded.token_expiry, updated_at = excluded.updated_at,
		revoked = CASE WHEN idp_sessions.revoked <> 0 THEN idp_sessions.revoked ELSE excluded.revoked END
		WHERE idp_sessions.issuer = excluded.issuer AND idp_sessions.subject = excluded.subject`,
		ss.ID, ss.Issuer, ss.Subject, ss.Kind, sealed[0], sealed[1], sealed[2], sealed[3], ts(ss.TokenExpiry), ts(ss.CreatedAt), ts(ss.UpdatedAt), revoked)
	if err != nil {
		return s.wrap("put IdP session", err)
	}
	if n == 0 {
		return fmt.Errorf("%w: IdP session id belongs to another user", ErrConflict)
	}
	return nil
}

// GetIdPSession returns the session with its tokens opened. A revoked
// session is returned too, with Revoked set and ErrRevoked.
func (s *sqlStore) GetIdPSession(ctx context.Context, id string) (IdPSession, error) {
	ss := IdPSession{ID: id}
	var sealed [4][]byte
	var exp, created, updated, revoked int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT issuer, subject, kind, claims, access_token, refresh_token, id_token, token_expiry, created_at, updated_at, revoked FROM idp_sessions WHERE id = ?`), id).
		Scan(&ss.Issuer, &ss.Subject, &ss.Kind, &sealed[0], &sealed[1], &sealed[2], &sealed[3], &exp, &created, &updated, &revoked)
	if err != nil {
		return IdPSession{}, s.wrap("get IdP session", err)
	}
	var plain [4][]byte
	for i, col := range []string{"claims", "access_token", "refresh_token", "id_token"} {
		if plain[i], err = s.sealer.Open(sessionsTable, col, id, sealed[i]); err != nil {
			return IdPSession{}, err
		}
	}
	ss.Claims = nilIfEmpty(plain[0])
	ss.AccessToken, ss.RefreshToken, ss.IDToken = string(plain[1]), string(plain[2]), string(plain[3])
	ss.TokenExpiry, ss.CreatedAt, ss.UpdatedAt = fromTS(exp), fromTS(created), fromTS(updated)
	ss.Revoked = revoked != 0
	if ss.Revoked {
		return ss, ErrRevoked
	}
	return ss, nil
}

// RevokeUser revokes the user's IdP sessions and refresh families, deletes
// their consents, their sessions' unredeemed codes and their platform
// grants, in one transaction. (Telling other replicas to drop cached
// platform tokens — Notify — is the caller's job.)
func (s *sqlStore) RevokeUser(ctx context.Context, issuer, subject string) error {
	now := s.now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, st := range []struct {
			q    string
			args []any
		}{
			{`UPDATE idp_sessions SET revoked = 1, updated_at = ? WHERE issuer = ? AND subject = ?`, []any{ts(now), issuer, subject}},
			{`DELETE FROM codes WHERE session_id IN (SELECT id FROM idp_sessions WHERE issuer = ? AND subject = ?)`, []any{issuer, subject}},
			{`UPDATE refresh_families SET revoked_at = ?, expires_at = {{greatest}}(expires_at, ?) WHERE issuer = ? AND subject = ? AND revoked_at = 0`,
				[]any{ts(now), ts(now.Add(RevokedFamilyRetention)), issuer, subject}},
			{`DELETE FROM consents WHERE issuer = ? AND subject = ?`, []any{issuer, subject}},
			{`DELETE FROM grants WHERE issuer = ? AND subject = ?`, []any{issuer, subject}},
		} {
			if _, err := tx.ExecContext(ctx, s.q(st.q), st.args...); err != nil {
				return err
			}
		}
		return nil
	})
	return s.wrap("revoke user", err)
}

// ---------------------------------------------------------------- signing keys

const signingKeysTable = "signing_keys"

func (s *sqlStore) PutSigningKey(ctx context.Context, k SigningKey) error {
	if k.ID == "" {
		return errors.New("store: put signing key: ID is required")
	}
	sealed, err := s.sealer.Seal(signingKeysTable, "private", k.ID, k.Private)
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, `INSERT INTO signing_keys (id, algorithm, private, created_at, retired_at) VALUES (?, ?, ?, ?, ?)`,
		k.ID, k.Algorithm, sealed, ts(k.CreatedAt), ts(k.RetiredAt))
	return s.wrap("put signing key", err)
}

func (s *sqlStore) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, algorithm, private, created_at, retired_at FROM signing_keys ORDER BY created_at DESC, id DESC`))
	if err != nil {
		return nil, s.wrap("signing keys", err)
	}
	defer rows.Close()
	var keys []SigningKey
	for rows.Next() {
		var k SigningKey
		var sealed []byte
		var created, retired int64
		if err := rows.Scan(&k.ID, &k.Algorithm, &sealed, &created, &retired); err != nil {
			return nil, s.wrap("signing keys", err)
		}
		if k.Private, err = s.sealer.Open(signingKeysTable, "private", k.ID, sealed); err != nil {
			return nil, err
		}
		k.CreatedAt, k.RetiredAt = fromTS(created), fromTS(retired)
		keys = append(keys, k)
	}
	return keys, s.wrap("signing keys", rows.Err())
}

// RetireSigningKey sets RetiredAt unless the key is retired already (the
// first retirement time stays). ErrNotFound for an unknown key.
func (s *sqlStore) RetireSigningKey(ctx context.Context, id string, at time.Time) error {
	n, err := s.exec(ctx, `UPDATE signing_keys SET retired_at = ? WHERE id = ? AND retired_at = 0`, ts(at), id)
	if err != nil {
		return s.wrap("retire signing key", err)
	}
	if n == 0 {
		var one int
		if err := s.db.QueryRowContext(ctx, s.q(`SELECT 1 FROM signing_keys WHERE id = ?`), id).Scan(&one); err != nil {
			return s.wrap("retire signing key", err)
		}
	}
	return nil
}

// ---------------------------------------------------------------- JTIs

// UseJTI records (issuer, jti) until exp; false when it is recorded and
// not yet expired. An expired record is replaced.
func (s *sqlStore) UseJTI(ctx context.Context, issuer, jti string, exp time.Time) (bool, error) {
	n, err := s.exec(ctx, `INSERT INTO jtis (issuer, jti, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (issuer, jti) DO UPDATE SET expires_at = excluded.expires_at WHERE jtis.expires_at < ?`,
		issuer, jti, ts(exp), ts(s.now()))
	if err != nil {
		return false, s.wrap("use jti", err)
	}
	return n == 1, nil
}

// ---------------------------------------------------------------- housekeeping

// Sweep deletes expired codes (used or not), refresh tokens, refresh
// families (a revoked one after RevokedFamilyRetention), expired consents
// and JTIs. IdP sessions are not swept.
func (s *sqlStore) Sweep(ctx context.Context, now time.Time) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			`DELETE FROM codes WHERE expires_at < ?`,
			`DELETE FROM refresh_tokens WHERE expires_at < ?`,
			`DELETE FROM refresh_families WHERE expires_at < ?`,
			`DELETE FROM consents WHERE expires_at <> 0 AND expires_at < ?`,
			`DELETE FROM jtis WHERE expires_at < ?`,
		} {
			if _, err := tx.ExecContext(ctx, s.q(q), ts(now)); err != nil {
				return err
			}
		}
		return nil
	})
	return s.wrap("sweep", err)
}

func (s *sqlStore) Ping(ctx context.Context) error {
	return s.wrap("ping", s.db.PingContext(ctx))
}

// Close ends the Store's Listen subscriptions and closes the database.
func (s *sqlStore) Close() error {
	if s.stop != nil {
		s.stop()
	}
	return s.db.Close()
}
