package sandbox

import (
	"testing"
	"time"
)

func FuzzParseSOQL(f *testing.F) {
	for _, s := range []string{
		"SELECT Id, Name, Amount, StageName, CloseDate FROM Opportunity WHERE IsClosed = false ORDER BY CloseDate ASC LIMIT 50",
		"SELECT Id FROM Opportunity WHERE StageName NOT IN ('Closed Won', 'Closed Lost') AND (Amount < 60000 OR Amount > 400000)",
		"SELECT Id, Account.Name FROM Opportunity WHERE Name LIKE 'Acme\\_%' AND CloseDate > TODAY",
		"SELECT COUNT() FROM Account WHERE CreatedDate > 2025-05-01T00:00:00Z OFFSET 3",
		"SELECT Id FROM Account WHERE Name = 'it\\'s \\u00e9'",
		"SELECT Id FROM User WHERE ManagerId = null ORDER BY Name DESC NULLS LAST",
		"SELECT Id FROM Opportunity USING SCOPE mine WHERE IsClosed = false ORDER BY CloseDate",
		"SELECT COUNT() FROM Account USING SCOPE Team", "SELECT Id FROM Case USING SCOPE team", "SELECT Id FROM User USING",
		"", "SELECT", "SELECT Id FROM Account WHERE ((((Name = 'x'", "'", "\\",
	} {
		f.Add(s)
	}
	sb, err := New(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, src string) {
		q, qerr := parseSOQL(src)
		if qerr != nil {
			_ = qerr.format(src)
			if q != nil {
				t.Fatal("both a query and an error")
			}
			return
		}
		// A parsed query must evaluate without panicking for any user.
		sb.mu.Lock()
		defer sb.mu.Unlock()
		u := sb.users[UserVP]
		ctx := sb.evalCtxLocked(u)
		ctx.now = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
		for _, rec := range sb.selectLocked(u, ctx, q.obj, q.scope, q.where, q.orderBy, q.offset, q.limit) {
			_ = sb.projectLocked(ctx, "v62.0", q.obj.name, rec, q.fields)
		}
	})
}

func FuzzParseSOSL(f *testing.F) {
	for _, s := range []string{
		"FIND {Acme} IN ALL FIELDS RETURNING Opportunity(Id, Name WHERE IsClosed = false ORDER BY Name LIMIT 5), Account(Id)",
		"FIND {Glob*} RETURNING Account",
		"FIND {bob@globex.example} IN EMAIL FIELDS RETURNING Contact(Id, Email) LIMIT 10",
		"FIND {a\\}b}", "FIND {", "FIND", "{x}", "FIND {Acme} RETURNING",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		q, qerr := parseSOSL(src)
		if qerr != nil {
			_ = qerr.format(src)
			return
		}
		rec := map[string]any{"Name": src, "Email": src}
		fields := searchFields(schema["contact"], q.scope)
		_ = soslMatch(rec, fields, q.words)
	})
}

func FuzzLikeMatch(f *testing.F) {
	f.Add("acme widgets", "acme%")
	f.Add("a_b", "a\\_b")
	f.Add("", "%%%_")
	f.Fuzz(func(t *testing.T, s, pattern string) {
		_ = likeMatch(s, pattern)
	})
}
