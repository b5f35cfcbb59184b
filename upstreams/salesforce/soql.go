package salesforce

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxSOQLLength bounds a query accepted by ValidateSOQL (Salesforce itself
// accepts up to 100,000 characters; an AI client has no business sending
// more than this).
const MaxSOQLLength = 20000

// QueryError explains why ValidateSOQL refused a query. Pos is the byte
// offset of the problem (-1 when it concerns the whole query).
type QueryError struct {
	Pos    int
	Reason string
}

func (e *QueryError) Error() string {
	if e.Pos < 0 {
		return "query refused: " + e.Reason
	}
	return fmt.Sprintf("query refused at character %d: %s", e.Pos+1, e.Reason)
}

// writeWords are SOQL/DML words that never belong in a read-only query:
// DML verbs (which SOQL does not have, but callers try) and the clauses that
// make a SELECT write (FOR UPDATE locks rows, UPDATE TRACKING / UPDATE
// VIEWSTAT record article views).
var writeWords = map[string]bool{
	"INSERT": true, "UPDATE": true, "DELETE": true, "UPSERT": true,
	"MERGE": true, "UNDELETE": true,
}

// forClauses are the FOR clauses of SOQL; each has a side effect (FOR UPDATE
// locks the records, FOR VIEW and FOR REFERENCE update LastViewedDate /
// LastReferencedDate), so none is allowed.
var forClauses = map[string]bool{"UPDATE": true, "VIEW": true, "REFERENCE": true}

// ValidateSOQL accepts exactly one read-only SOQL SELECT statement and
// returns a *QueryError otherwise. It lexes string literals (single quotes,
// backslash escapes) so words and semicolons inside literals do not count.
// It refuses: anything not starting with SELECT, a second statement (a
// semicolon outside a literal), DML words (INSERT, UPDATE, DELETE, UPSERT,
// MERGE, UNDELETE) outside literals, FOR UPDATE/VIEW/REFERENCE, unterminated
// literals, control characters and queries over MaxSOQLLength. It does not
// otherwise check the grammar: Salesforce reports MALFORMED_QUERY for that.
func ValidateSOQL(q string) error {
	if !utf8.ValidString(q) {
		return &QueryError{Pos: -1, Reason: "the query is not valid UTF-8"}
	}
	if len(q) > MaxSOQLLength {
		return &QueryError{Pos: -1, Reason: fmt.Sprintf("the query is longer than %d characters", MaxSOQLLength)}
	}
	if strings.TrimSpace(q) == "" {
		return &QueryError{Pos: -1, Reason: "the query is empty"}
	}
	var words []soqlWord
	for i := 0; i < len(q); {
		r, size := utf8.DecodeRuneInString(q[i:])
		switch {
		case r == '\'':
			end, ok := skipLiteral(q, i)
			if !ok {
				return &QueryError{Pos: i, Reason: "unterminated string literal"}
			}
			i = end
			continue
		case r == ';':
			return &QueryError{Pos: i, Reason: "only one statement is allowed (found ';')"}
		case r == '\t' || r == '\n' || r == '\r':
		case unicode.IsControl(r):
			return &QueryError{Pos: i, Reason: fmt.Sprintf("control character %U is not allowed", r)}
		case isWordRune(r):
			start := i
			for i < len(q) {
				r2, s2 := utf8.DecodeRuneInString(q[i:])
				if !isWordRune(r2) {
					break
				}
				i += s2
			}
			words = append(words, soqlWord{pos: start, text: strings.ToUpper(q[start:i])})
			continue
		}
		i += size
	}
	first := len(q) - len(strings.TrimLeft(q, " \t\r\n"))
	if len(words) == 0 || words[0].text != "SELECT" || words[0].pos != first {
		pos := first
		return &QueryError{Pos: pos, Reason: "only SELECT statements are allowed (SOQL is read-only here)"}
	}
	for k, w := range words {
		if writeWords[w.text] {
			return &QueryError{Pos: w.pos, Reason: fmt.Sprintf("%s is not allowed: this tool only reads data", w.text)}
		}
		if w.text == "FOR" && k+1 < len(words) && forClauses[words[k+1].text] {
			return &QueryError{Pos: w.pos, Reason: fmt.Sprintf("FOR %s is not allowed: it has side effects on the records", words[k+1].text)}
		}
	}
	return nil
}

type soqlWord struct {
	pos  int
	text string
}

// isWordRune: SOQL identifiers are letters, digits and underscores (and
// dots in paths, which separate words here).
func isWordRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
}

// skipLiteral returns the index just past the string literal starting at
// q[i] == '\”.
func skipLiteral(q string, i int) (int, bool) {
	for j := i + 1; j < len(q); j++ {
		switch q[j] {
		case '\\':
			j++ // the escaped character, whatever it is
		case '\'':
			return j + 1, true
		}
	}
	return 0, false
}

// soslReserved are the characters SOSL reserves in a FIND term; the SOSL
// reference ("FIND clause") says to escape each with a backslash:
// ? & | ! { } [ ] ( ) ^ ~ * : \ " ' + -
const soslReserved = `?&|!{}[]()^~*:\"'+-`

// MaxSearchTermLength bounds the search term of EscapeSOSL's callers.
const MaxSearchTermLength = 500

// EscapeSOSL makes a literal SOSL search term of s: every reserved
// character is escaped with a backslash, and control characters (including
// line breaks) become spaces, so the result can be placed between FIND {
// and } without changing the statement's structure and without acting as
// an operator or wildcard.
func EscapeSOSL(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			b.WriteRune(' ')
		case unicode.IsControl(r):
			b.WriteByte(' ')
		case r < utf8.RuneSelf && strings.IndexByte(soslReserved, byte(r)) >= 0:
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// unescapeSOSL reverses EscapeSOSL (for tests and fuzzing).
func unescapeSOSL(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
