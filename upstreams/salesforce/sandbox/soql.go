package sandbox

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// A SOQL subset: lexer and errors (this file), parser with
// Salesforce-shaped error messages (soql_parse.go) and evaluator
// (soql_eval.go).
//
//	SELECT field[, field…] | COUNT()
//	FROM Account|Contact|Opportunity|Case|User
//	[USING SCOPE everything|mine|team]   (see supportedScopes; API v32.0+)
//	[WHERE cond]          cond: field op value | field [NOT] IN (v, …) |
//	                      field LIKE 'pat%' | NOT cond | cond AND/OR cond | (cond)
//	                      op: = != <> < <= > >=
//	                      value: 'string' | number | true | false | null |
//	                      2026-01-31 | 2026-01-31T00:00:00Z | TODAY | YESTERDAY | TOMORROW
//	[ORDER BY field [ASC|DESC] [NULLS FIRST|LAST][, …]]
//	[LIMIT n] [OFFSET n]
//
// Fields may be relationship paths one level deep (Account.Name, Owner.Name).

// Limits from the SOQL documentation.
const (
	maxSOQLLength = 100000 // "SOQL statements cannot be longer than 100,000 characters"
	maxOffset     = 2000   // "Maximum SOQL offset allowed is 2000"
	maxNesting    = 100    // parenthesis depth before QUERY_TOO_COMPLICATED
)

// queryError is a SOQL/SOSL error carrying the Salesforce errorCode.
type queryError struct {
	code string // MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE, ...
	msg  string
	pos  int // byte offset in the statement; -1 if none
}

func (e *queryError) Error() string { return e.code + ": " + e.msg }

// format renders the message the way Salesforce does: the offending line, a
// caret, the row/column and the reason.
func (e *queryError) format(src string) string {
	if e.pos < 0 || e.pos > len(src) {
		return e.msg
	}
	row, lineStart := 1, 0
	for i := 0; i < e.pos; i++ {
		if src[i] == '\n' {
			row++
			lineStart = i + 1
		}
	}
	lineEnd := strings.IndexByte(src[lineStart:], '\n')
	line := src[lineStart:]
	if lineEnd >= 0 {
		line = src[lineStart : lineStart+lineEnd]
	}
	col := utf8.RuneCountInString(src[lineStart:e.pos]) + 1
	if len(line) > 200 { // keep messages bounded
		line = line[:200]
	}
	return fmt.Sprintf("\n%s\n%s^\nERROR at Row:%d:Column:%d\n%s", line, strings.Repeat(" ", col-1), row, col, e.msg)
}

func malformed(pos int, format string, args ...any) *queryError {
	return &queryError{code: "MALFORMED_QUERY", msg: fmt.Sprintf(format, args...), pos: pos}
}

// ---- lexer ----

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tDate
	tDateTime
	tPunct
)

type token struct {
	kind tokKind
	text string // source text (strings: without quotes, still escaped)
	pos  int
}

var (
	reDate     = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	reDateTime = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:?\d{2})$`)
)

func isIdentStart(c byte) bool { return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentChar(c byte) bool  { return isIdentStart(c) || (c >= '0' && c <= '9') || c == '.' }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }

// lex splits src[start:] into tokens; positions are offsets into src.
func lex(src string, start int) ([]token, *queryError) {
	var toks []token
	i := start
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentChar(src[j]) {
				j++
			}
			toks = append(toks, token{tIdent, src[i:j], i})
			i = j
		case c == '\'':
			j := i + 1
			for {
				if j >= len(src) {
					return nil, malformed(j, "line 1:%d mismatched character '<EOF>' expecting '''", j)
				}
				if src[j] == '\\' {
					j += 2
					continue
				}
				if src[j] == '\'' {
					break
				}
				j++
			}
			toks = append(toks, token{tString, src[i+1 : j], i})
			i = j + 1
		case isDigit(c) || ((c == '-' || c == '+') && i+1 < len(src) && isDigit(src[i+1])):
			j := i + 1
			for j < len(src) && (isDigit(src[j]) || src[j] == '.' || src[j] == '-' || src[j] == ':' || src[j] == 'T' || src[j] == 'Z' || (src[j] == '+' && j > i+4)) {
				j++
			}
			text := src[i:j]
			switch {
			case reDate.MatchString(text):
				if _, err := time.Parse("2006-01-02", text); err != nil {
					return nil, malformed(i, "line 1:%d no viable alternative at character '%s'", i, text)
				}
				toks = append(toks, token{tDate, text, i})
			case reDateTime.MatchString(text):
				if _, err := parseSOQLDateTime(text); err != nil {
					return nil, malformed(i, "line 1:%d no viable alternative at character '%s'", i, text)
				}
				toks = append(toks, token{tDateTime, text, i})
			default:
				if _, err := strconv.ParseFloat(text, 64); err != nil {
					return nil, malformed(i, "unexpected token: '%s'", clip(text))
				}
				toks = append(toks, token{tNumber, text, i})
			}
			i = j
		case c == '!' || c == '<' || c == '>':
			if i+1 < len(src) && (src[i+1] == '=' || (c == '<' && src[i+1] == '>')) {
				toks = append(toks, token{tPunct, src[i : i+2], i})
				i += 2
			} else if c == '!' {
				return nil, malformed(i, "line 1:%d no viable alternative at character '!'", i)
			} else {
				toks = append(toks, token{tPunct, src[i : i+1], i})
				i++
			}
		case c == '(' || c == ')' || c == ',' || c == '=':
			toks = append(toks, token{tPunct, src[i : i+1], i})
			i++
		default:
			r, _ := utf8.DecodeRuneInString(src[i:])
			return nil, malformed(i, "line 1:%d no viable alternative at character '%s'", i, string(r))
		}
	}
	toks = append(toks, token{tEOF, "", len(src)})
	return toks, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// unescapeSOQL decodes a string literal's escapes. With like=true, \% and \_
// stay escaped so the LIKE matcher can treat them as literals.
func unescapeSOQL(s string, like bool) (string, bool) {
	if !strings.Contains(s, "\\") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i >= len(s) {
			return "", false
		}
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case '"', '\'', '\\':
			if like && s[i] == '\\' {
				b.WriteString(`\\`)
			} else {
				b.WriteByte(s[i])
			}
		case '%', '_':
			if like {
				b.WriteByte('\\')
			}
			b.WriteByte(s[i])
		case 'u':
			if i+5 > len(s) {
				return "", false
			}
			n, err := strconv.ParseUint(s[i+1:i+5], 16, 32)
			if err != nil {
				return "", false
			}
			b.WriteRune(rune(n))
			i += 4
		default:
			return "", false
		}
	}
	return b.String(), true
}

func parseSOQLDateTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05.000Z07:00", "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05.000Z0700", "2006-01-02T15:04:05.999999999Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid datetime %q", s)
}
