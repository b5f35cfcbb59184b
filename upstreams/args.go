package upstreams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	segjson "github.com/segmentio/encoding/json"
)

// MaxArgumentDepth bounds the nesting of a call's arguments.
const MaxArgumentDepth = 64

// CheckArguments checks that a call's arguments (a JSON object, or empty
// or null for none) mean the same thing to every reader: the gateway's
// policy and audit, and an upstream in any language. It refuses what
// JSON parsers disagree on:
//
//   - a key that appears twice in one object (most parsers keep the last,
//     some the first);
//   - two keys of one object that are equal ignoring case, Unicode simple
//     folding included ("table" and "TABLE", "K" and the Kelvin sign):
//     Go's encoding/json, and so every go-sdk server and Mandate's native
//     adapters, match struct fields case-insensitively, last one winning,
//     while policy reads keys exactly — {"table":"incident","TABLE":"sys_user"}
//     would pass a rule on arguments.table and run against sys_user;
//   - invalid UTF-8 (Go replaces it with U+FFFD, others keep the bytes);
//   - nesting deeper than MaxArgumentDepth.
//
// It checks objects at every depth. The error says which key, with its
// path; callers answer it with JSON-RPC invalid params (-32602).
func CheckArguments(raw []byte) error {
	raw = bytes.Trim(raw, " \t\r\n") // JSON whitespace only
	if len(raw) == 0 || string(raw) == "null" || string(raw) == "{}" {
		return nil
	}
	if raw[0] != '{' {
		return errors.New("arguments must be a JSON object")
	}
	if !utf8.Valid(raw) {
		return errors.New("arguments are not valid UTF-8")
	}
	if json.Valid(raw) && !ambiguous(raw) {
		return nil
	}
	// Something is wrong: walk again, slowly, to say what and where.
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := checkValue(dec, nil, 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("arguments: trailing data after the JSON object")
	}
	return errors.New("arguments are not valid JSON")
}

// scan is the reusable state of ambiguous.
type scan struct {
	tok    segjson.Tokenizer
	keys   [][]byte // folded keys of the open objects, innermost last
	frames []int    // per open object or array: where its keys start in keys (-1: array)
}

var scans = sync.Pool{New: func() any { return &scan{keys: make([][]byte, 0, 32), frames: make([]int, 0, 8)} }}

// ambiguous reports whether valid JSON raw has an object with two keys
// that fold to one, or is nested too deep. It is the fast check on the
// hot path: no allocation for plain keys; keys of an object are sorted
// when it closes, so a hostile object with many keys costs n log n.
func ambiguous(raw []byte) bool {
	s := scans.Get().(*scan)
	defer func() {
		clear(s.keys[:cap(s.keys)])
		s.keys, s.frames = s.keys[:0], s.frames[:0]
		s.tok.Reset(nil)
		scans.Put(s)
	}()
	s.tok.Reset(raw)
	t := &s.tok
	for t.Next() {
		switch {
		case t.IsKey:
			k := t.String()
			if !plainKey(k) {
				k = []byte(FoldKey(string(k)))
			}
			s.keys = append(s.keys, k)
		case t.Delim == '{' || t.Delim == '[':
			if len(s.frames) >= MaxArgumentDepth {
				return true
			}
			f := len(s.keys)
			if t.Delim == '[' {
				f = -1
			}
			s.frames = append(s.frames, f)
		case t.Delim == '}' || t.Delim == ']':
			if len(s.frames) == 0 {
				return true
			}
			f := s.frames[len(s.frames)-1]
			s.frames = s.frames[:len(s.frames)-1]
			if f < 0 {
				continue
			}
			obj := s.keys[f:]
			if len(obj) > 1 {
				slices.SortFunc(obj, bytes.Compare)
				for i := 1; i < len(obj); i++ {
					if bytes.Equal(obj[i-1], obj[i]) {
						return true
					}
				}
			}
			s.keys = s.keys[:f]
		}
	}
	return t.Err != nil
}

// plainKey reports whether k is its own folded form (no upper-case ASCII,
// no non-ASCII byte).
func plainKey(k []byte) bool {
	for _, c := range k {
		if c >= utf8.RuneSelf || (c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// checkValue reads one JSON value from dec, checking the keys of every
// object in it; path is where the value is (for messages).
func checkValue(dec *json.Decoder, path []string, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("arguments are not valid JSON: %v", err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= MaxArgumentDepth {
		return fmt.Errorf("arguments are nested deeper than %d levels", MaxArgumentDepth)
	}
	switch d {
	case '[':
		for i := 0; dec.More(); i++ {
			if err := checkValue(dec, append(path, "["+strconv.Itoa(i)+"]"), depth+1); err != nil {
				return err
			}
		}
	case '{':
		var seen map[string]string // folded key → key as sent
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return fmt.Errorf("arguments are not valid JSON: %v", err)
			}
			key, _ := kt.(string)
			f := FoldKey(key)
			if prev, dup := seen[f]; dup {
				where := argPath(path)
				if prev == key {
					return fmt.Errorf("arguments%s: key %q appears more than once", where, key)
				}
				return fmt.Errorf("arguments%s: keys %q and %q differ only in case; send one of them", where, prev, key)
			}
			if seen == nil {
				seen = make(map[string]string, 8)
			}
			seen[f] = key
			if err := checkValue(dec, append(path, key), depth+1); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return fmt.Errorf("arguments are not valid JSON: %v", err)
	}
	return nil
}

// FoldKey maps every key that Go's encoding/json would match to the same
// struct field to one string, the way encoding/json folds names
// (bytes.EqualFold semantics): ASCII to lower case, other runes to
// ToLower(ToUpper(r)), which folds the Kelvin sign to k and the long s to s.
func FoldKey(s string) string {
	if plainKey([]byte(s)) {
		return s // lower-case ASCII already (the usual key)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		b.WriteRune(unicode.ToLower(unicode.ToUpper(r)))
	}
	return b.String()
}

func argPath(path []string) string {
	var b strings.Builder
	for _, p := range path {
		if strings.HasPrefix(p, "[") {
			b.WriteString(p)
		} else {
			b.WriteString("." + p)
		}
	}
	return b.String()
}
