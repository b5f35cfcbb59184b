// Package audit writes Mandate's audit log: one JSON line per MCP operation
// (list, call, read, get, denied attempts, authentication failures) saying
// who (the IdP identity) did what, as whom (the platform identity), allowed
// by which rule, with what outcome and latency.
//
// # Guarantees
//
//   - No loss under load: Log returns only after the record is written to
//     the sink (and fsynced, with fsync: every). Concurrent calls share one
//     write (group commit), so under load callers are slowed down, never
//     dropped.
//   - Failing sink: a write error makes the logger not Writable (callers
//     refuse new operations); Log then queues the record, returns
//     ErrNotWritten at once, and a background retry with back-off writes
//     the queue in order when the sink recovers. Offer (optional records)
//     drops records beyond a bounded queue and counts them in an
//     audit/dropped record. Close copies what it cannot write to the
//     operational log; a crash loses the queue.
//   - No secrets: Record has no field for a token, assertion, secret or
//     cookie; Error is scrubbed of JWTs, "Bearer …" and secret-named
//     key/value pairs; Arguments are only logged when an upstream opts in,
//     after Redact removes the configured fields.
//   - Tamper evidence: every record carries seq, prev_hash and
//     hash = hex(SHA-256(prev_hash || the line without its hash member)).
//     The first record of a chain has prev_hash = GenesisHash (64 zeros).
//     A file sink resumes the chain of an existing file on start, and the
//     chain continues across Reopen (log rotation), so a rotated-in file
//     starts mid-chain; Verify accepts its first prev_hash as the anchor
//     and says so. The stdout sink starts a new chain per process and
//     Close ends it with an audit/close record; Verify accepts a new chain
//     inside an input only after one (or with AllowRestarts).
//     Verify reports the first broken line. A hash chain without a key
//     proves that records were not edited, inserted, deleted or reordered;
//     it cannot detect removal of the newest records or a complete rewrite,
//     so ship VerifyResult.LastHash (or the Hash of recent records) to a
//     second system if that matters.
//
// # Configuration
//
//	audit:
//	  sink: stdout        # stdout | file
//	  path: ""            # required for file; opened append-only, mode 0600
//	  fsync: none         # none | every | interval (file sink only)
//	  fsync_interval: 1s  # period of fsync: interval
//
// fsync trade-offs: none survives a crash of Mandate (records are in the
// kernel) but a machine crash may lose the last seconds; every survives a
// machine crash and costs one disk flush per batch of concurrent
// operations (latency of every operation grows by the disk's flush time);
// interval bounds the loss on a machine crash to fsync_interval at almost
// no cost per operation.
//
// # Usage
//
//	lg, err := audit.New(cfg.Audit, audit.Options{Logger: slog.Default()})
//	if err != nil { return err }
//	defer lg.Close()
//	// on SIGHUP: lg.Reopen()
//
//	rec := &audit.Record{
//		RequestID: reqID, SessionID: sessID, Client: "claude-ai/1.0",
//		User:   audit.UserRef{Issuer: id.Issuer, Subject: id.Subject, Email: id.Email, Roles: id.Roles},
//		Method: "tools/call", Upstream: "crm", Tool: "get_account",
//		Decision:   &audit.DecisionRef{Allow: true, Rule: "sales-use-crm"},
//		Credential: &audit.CredentialRef{Flow: "token_exchange", PlatformSubject: "alice@crm", CacheHit: true},
//		Outcome: audit.OutcomeOK, LatencyMS: 12.5,
//	}
//	if upstream.AuditArguments {
//		rec.Arguments = audit.Redact(args, upstream.RedactFields) // e.g. ["password", "card.number"]
//	}
//	if !lg.Writable() { /* refuse the operation before it runs */ }
//	// ... run it ...
//	if err := lg.Log(ctx, rec); errors.Is(err, audit.ErrNotWritten) {
//		// queued: written when the sink recovers
//	}
//
// Checking a file (`mandate audit verify FILE`):
//
//	res, err := audit.VerifyFile(path) // err: I/O only
//	fmt.Println(res)                   // "ok: 1234 records (seq 1-1234), chain intact"
//	if !res.OK { os.Exit(1) }          // "broken at line 57: hash mismatch (record edited?)"
package audit
