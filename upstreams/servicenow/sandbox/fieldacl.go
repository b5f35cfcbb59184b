package sandbox

// Field-level ACLs (table.field read/write rules) on top of the record ACLs
// of http.go.
//
// ServiceNow evaluates a record ACL and then a field ACL for every field
// (ServiceNow docs, "Access control list rules": "a user must pass the
// table ACL and the field ACL"). Through the Table API a field the user
// may not write is silently left as it was — the request still answers 200
// with the record — and a field the user may not read comes back empty
// (ServiceNow KB2971488 "REST API 403: Forbidden — Field-Level ACL
// Diagnosis Guide": a table-level block answers 403, a field-level one
// "silences" the field: the response returns it empty, and writes to it do
// not persist). So a client can only tell that a write was refused by
// comparing the answer with its request.

// fulfillerOnlyWrite are the incident fields only fulfillers (itil, admin)
// may write; a caller updating her own incident may change the rest. On an
// instance out of the box, assignment, the work notes and the resolution
// fields are the service desk's (the self-service view offers callers
// comments, descriptions and urgency).
var fulfillerOnlyWrite = map[string]bool{
	"caller_id": true, "assigned_to": true, "assignment_group": true,
	"work_notes": true, "close_code": true, "close_notes": true,
}

// fulfillerOnlyRead are the incident fields only fulfillers may read: work
// notes are internal to the service desk, which is the difference between
// them and (customer-visible) additional comments.
var fulfillerOnlyRead = map[string]bool{"work_notes": true}

// canWriteField is the write (and create) ACL of table.field.
func canWriteField(u *User, table, field string) bool {
	if table != "incident" || !fulfillerOnlyWrite[field] {
		return true
	}
	return u.hasRole("itil", "admin")
}

// canReadField is the read ACL of table.field.
func canReadField(u *User, table, field string) bool {
	if table != "incident" || !fulfillerOnlyRead[field] {
		return true
	}
	return u != nil && u.hasRole("itil", "admin")
}
