package salesforce

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestValidateSOQL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		q      string
		ok     bool
		reason string
	}{
		{"SELECT Id FROM Account", true, ""},
		{"  select Id, Name FROM Account WHERE Name = 'x' LIMIT 5  ", true, ""},
		{"SELECT Id FROM Account WHERE Name = 'DELETE; UPDATE'", true, ""},
		{`SELECT Id FROM Account WHERE Name = 'O\'Brien; x'`, true, ""},
		{"SELECT Id, (SELECT Id FROM Contacts) FROM Account", true, ""},
		{"SELECT Id FROM Account WHERE LastModifiedDate = LAST_N_DAYS:30", true, ""},
		{"SELECT Id, Deleted__c, Updated_By__c FROM Thing__c", true, ""},
		{"SELECT Id FROM Account\nWHERE IsDeleted = false", true, ""},
		{"", false, "empty"},
		{"   ", false, "empty"},
		{"DELETE FROM Account", false, "only SELECT"},
		{"UPDATE Account SET Name = 'x'", false, "only SELECT"},
		{"'x' SELECT Id FROM Account", false, "only SELECT"},
		{"SELECTId FROM Account", false, "only SELECT"},
		{"SELECT Id FROM Account; SELECT Id FROM Contact", false, "one statement"},
		{"SELECT Id FROM Account;", false, "one statement"},
		{"SELECT Id FROM Account FOR UPDATE", false, "FOR UPDATE"},
		{"SELECT Id FROM Account for view", false, "FOR VIEW"},
		{"SELECT Id FROM Account FOR REFERENCE", false, "FOR REFERENCE"},
		{"SELECT Id FROM FAQ__kav UPDATE TRACKING", false, "UPDATE"},
		{"SELECT Id FROM Account WHERE Name = 'x", false, "unterminated"},
		{`SELECT Id FROM Account WHERE Name = 'x\'`, false, "unterminated"},
		{"SELECT Id FROM Account\x00", false, "control character"},
		{"SELECT Id FROM Account WHERE Name = '\xff'", false, "UTF-8"},
		{"SELECT " + strings.Repeat("Id, ", MaxSOQLLength/4) + "Id FROM Account", false, "longer than"},
		{"SELECT Id FROM Account WHERE Id IN (SELECT Id FROM Contact) MERGE", false, "MERGE"},
	} {
		err := ValidateSOQL(tc.q)
		if tc.ok != (err == nil) {
			t.Errorf("ValidateSOQL(%.60q) = %v, want ok=%v", tc.q, err, tc.ok)
			continue
		}
		var qe *QueryError
		if err != nil && (!errors.As(err, &qe) || !strings.Contains(err.Error(), tc.reason)) {
			t.Errorf("ValidateSOQL(%.60q) = %v, want a QueryError about %q", tc.q, err, tc.reason)
		}
	}
}

func TestEscapeSOSL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Acme":             "Acme",
		"Acme Widgets":     "Acme Widgets",
		"a}b":              `a\}b`,
		`x\y`:              `x\\y`,
		"O'Brien-Smith":    `O\'Brien\-Smith`,
		"?&|!{}[]()^~*:\"": `\?\&\|\!\{\}\[\]\(\)\^\~\*\:\"`,
		"line\nbreak":      "line break",
		"café +1":          `café \+1`,
	} {
		if got := EscapeSOSL(in); got != want {
			t.Errorf("EscapeSOSL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBuildSOSL(t *testing.T) {
	t.Parallel()
	got, err := BuildSOSL("Acme} RETURNING User", []SearchObject{{Type: "Account", Fields: []string{"Id", "Name", "Owner.Name", "name"}}, {Type: "Contact"}}, 25)
	if err != nil {
		t.Fatal(err)
	}
	if want := `FIND {Acme\} RETURNING User} IN ALL FIELDS RETURNING Account(Id, Name, Owner.Name), Contact LIMIT 25`; got != want {
		t.Errorf("BuildSOSL = %q\nwant        %q", got, want)
	}
	for _, tc := range []struct {
		term string
		objs []SearchObject
		want string
	}{
		{"a", nil, "at least 2"},
		{strings.Repeat("x", MaxSearchTermLength+1), nil, "at most"},
		{"ok", []SearchObject{{Type: "Account)"}}, "not an sObject"},
		{"ok", []SearchObject{{Type: "Account", Fields: []string{"Id)"}}}, "not a field"},
		{"ok", []SearchObject{{Type: "Account"}, {Type: "account"}}, "twice"},
	} {
		if _, err := BuildSOSL(tc.term, tc.objs, 10); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("BuildSOSL(%.20q, %v) = %v, want %q", tc.term, tc.objs, err, tc.want)
		}
	}
}

var reDML = regexp.MustCompile(`(?i)\b(insert|update|delete|upsert|merge|undelete)\b`)

// stripLiterals removes SOQL string literals, for the fuzz oracle.
func stripLiterals(q string) string {
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		if q[i] == '\'' {
			end, ok := skipLiteral(q, i)
			if !ok {
				return b.String()
			}
			b.WriteString("''")
			i = end - 1
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

func FuzzValidateSOQL(f *testing.F) {
	for _, s := range []string{
		"SELECT Id FROM Account", "SELECT Id FROM Account WHERE Name = 'a;b'", "DELETE FROM Account",
		"SELECT Id FROM Account FOR UPDATE", `SELECT Id FROM Account WHERE Name = 'x\'y'`, "select\tid\nfrom x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		err := ValidateSOQL(q)
		if err != nil {
			var qe *QueryError
			if !errors.As(err, &qe) {
				t.Fatalf("error %v is not a *QueryError", err)
			}
			return
		}
		trimmed := strings.TrimLeft(q, " \t\r\n")
		// The word SELECT: six letters, then no letter, digit or '_' (as a
		// rune: "SELECT،" — U+060C, punctuation — starts with the word).
		next, _ := utf8.DecodeRuneInString(trimmed[min(6, len(trimmed)):])
		if len(trimmed) < 6 || !strings.EqualFold(trimmed[:6], "SELECT") || (len(trimmed) > 6 && (next == '_' || unicode.IsLetter(next) || unicode.IsDigit(next))) {
			t.Fatalf("accepted a query that does not start with the word SELECT: %q", q)
		}
		outside := stripLiterals(q)
		if strings.Contains(outside, ";") {
			t.Fatalf("accepted a second statement: %q", q)
		}
		if m := reDML.FindString(outside); m != "" && !isPartOfWord(outside, m) {
			t.Fatalf("accepted DML word %q: %q", m, q)
		}
		// Anything appended after an accepted query is outside any literal.
		if ValidateSOQL(q+"; DELETE FROM Account") == nil || ValidateSOQL(q+" FOR UPDATE") == nil {
			t.Fatalf("an accepted query hides a trailing statement: %q", q)
		}
	})
}

// isPartOfWord: \b in Go regexps is ASCII-only; a match glued to a
// non-ASCII letter (e.g. "éupdate") is part of a longer SOQL word.
func isPartOfWord(s, m string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], m)
		if j < 0 {
			return true
		}
		j += i
		before, after := rune(0), rune(0)
		if j > 0 {
			before = []rune(s[:j])[len([]rune(s[:j]))-1]
		}
		if rest := []rune(s[j+len(m):]); len(rest) > 0 {
			after = rest[0]
		}
		if !isWordRune(before) && !isWordRune(after) {
			return false
		}
		i = j + 1
	}
}

func FuzzEscapeSOSL(f *testing.F) {
	for _, s := range []string{"Acme", "a}b", `\`, "O'Brien", "?&|!{}[]()^~*:\"'+-", "line\nbreak", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		esc := EscapeSOSL(s)
		// Every reserved character is escaped: scanning as SOSL does, the
		// term ends only at the closing brace we add.
		for i := 0; i < len(esc); i++ {
			c := esc[i]
			if c == '\\' {
				if i+1 >= len(esc) || !strings.ContainsRune(soslReserved, rune(esc[i+1])) {
					t.Fatalf("dangling or needless escape in %q", esc)
				}
				i++
				continue
			}
			if strings.IndexByte(soslReserved, c) >= 0 {
				t.Fatalf("unescaped reserved %q in %q (from %q)", c, esc, s)
			}
			if c < 0x20 || c == 0x7f {
				t.Fatalf("control byte in %q", esc)
			}
		}
		// Reversible up to control characters and invalid UTF-8.
		norm := strings.Map(func(r rune) rune {
			if r == unicode.ReplacementChar || unicode.IsControl(r) {
				return ' '
			}
			return r
		}, s)
		if got := unescapeSOSL(esc); got != norm {
			t.Fatalf("unescape(escape(%q)) = %q, want %q", s, got, norm)
		}
	})
}
