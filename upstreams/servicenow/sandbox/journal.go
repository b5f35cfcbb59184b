package sandbox

// Journal fields (comments, work_notes): each write appends an entry; the
// record itself holds no value.

import (
	"strings"
)

// journalFields are the incident's journal fields and the label the
// platform prints in each entry's header ("Additional comments", "Work
// notes").
var journalFields = map[string]string{"comments": "Additional comments", "work_notes": "Work notes"}

// journalEntry is one sys_journal_field row: element_id (the record), name
// (its table), element (the field), value, sys_created_by/on.
type journalEntry struct {
	element   string
	value     string
	createdBy string // user_name
	author    string // the user's name, as the entry header shows it
	createdOn string
}

// appendJournalLocked records a write to a journal field. ServiceNow docs,
// "Journal field type": journal fields "allow and store input" and display
// "the combined inputs"; each input is a row of the Journal Entries
// [sys_journal_field] table (element_id = the record's sys_id, element =
// the field), not a value on the record, so a second write adds an entry
// and never replaces the first. An empty input adds nothing, as in the UI.
func (s *Server) appendJournalLocked(u *User, sysID, field, v string) {
	if strings.TrimSpace(v) == "" {
		return
	}
	if s.journal == nil {
		s.journal = map[string][]journalEntry{}
	}
	author := strings.TrimSpace(u.FirstName + " " + u.LastName)
	if author == "" {
		author = u.UserName
	}
	s.journal[sysID] = append(s.journal[sysID], journalEntry{
		element: field, value: v, createdBy: u.UserName, author: author, createdOn: s.nowString(),
	})
}

// seedJournal turns a seeded incident's comments and work_notes into
// journal entries written by the system administrator when it was created.
func (s *Server) seedJournal(rec map[string]string) {
	admin := &User{UserName: "admin", FirstName: "System", LastName: "Administrator"}
	for f := range journalFields {
		if v := rec[f]; v != "" {
			rec[f] = ""
			s.appendJournalLocked(admin, rec["sys_id"], f, v)
			e := &s.journal[rec["sys_id"]][len(s.journal[rec["sys_id"]])-1]
			if e.createdOn = rec["sys_created_on"]; e.createdOn == "" {
				e.createdOn = seedTime
			}
		}
	}
}

// journalDisplayLocked is the display value of a journal field: every entry
// of that field, newest first, each as "<created on> - <author> (<label>)\n
// <text>\n\n" — what GlideElement.getJournalEntry(-1) returns and what the
// Table API answers with sysparm_display_value=true (ServiceNow docs,
// "Journal field type": "retrieve all entries as a string", entries
// delimited by "\n\n"). The field's value (sysparm_display_value=false) is
// empty: the text lives in sys_journal_field, not on the record.
func (s *Server) journalDisplayLocked(sysID, field string) string {
	entries := s.journal[sysID]
	var b strings.Builder
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.element != field {
			continue
		}
		b.WriteString(e.createdOn + " - " + e.author + " (" + journalFields[field] + ")\n" + e.value + "\n\n")
	}
	return b.String()
}

// JournalEntry is one journal entry, for test assertions.
type JournalEntry struct {
	Field     string // comments or work_notes
	Value     string
	CreatedBy string // user_name
	CreatedOn string
}

// Journal returns the journal entries of a record, oldest first.
func (s *Server) Journal(sysID string) []JournalEntry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []JournalEntry{}
	for _, e := range s.journal[sysID] {
		out = append(out, JournalEntry{Field: e.element, Value: e.value, CreatedBy: e.createdBy, CreatedOn: e.createdOn})
	}
	return out
}
