package sandbox

import "testing"

func FuzzParseEncodedQuery(f *testing.F) {
	for _, s := range []string{
		"active=true^caller_id=javascript:gs.getUserID()^ORDERBYDESCopened_at",
		"state=1^ORstate=2^assignment_group.name=Service Desk^NQpriority<=2",
		"short_descriptionLIKEvpn^numberSTARTSWITHINC^stateNOT IN6,7,8",
		"assigned_toISEMPTY^ORassigned_toISNOTEMPTY^EQ",
		"", "^", "^OR", "ORDERBY", "=", "a", "caller_id.", "javascript:",
	} {
		f.Add(s)
	}
	sb, err := New(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, src string) {
		q, qe := parseEncodedQuery(tables["incident"], src)
		if qe != nil {
			if q != nil {
				t.Fatal("both a query and an error")
			}
			return
		}
		// A parsed query evaluates and sorts without panicking.
		sb.mu.RLock()
		defer sb.mu.RUnlock()
		ev := &evaluator{table: tables["incident"], lookup: sb.lookupLocked, me: sb.users[UserRep]}
		for _, id := range sb.order["incident"] {
			rec := sb.rows["incident"][id]
			_ = ev.match(rec, q)
			for _, ob := range q.orderBy {
				v, fs := ev.value(rec, ob.field)
				_ = compareValues(fs, v, "x")
			}
		}
	})
}
