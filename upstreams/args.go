package upstreams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
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
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if raw[0] != '{' {
		return errors.New("arguments must be a JSON object")
	}
	if !utf8.Valid(raw) {
		return errors.New("arguments are not valid UTF-8")
	}
	if string(raw) == "{}" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := checkValue(dec, nil, 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("arguments: trailing data after the JSON object")
	}
	return nil
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
			f := foldKey(key)
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

// foldKey maps every key that Go's encoding/json would match to the same
// struct field to one string, the way encoding/json folds names
// (bytes.EqualFold semantics): ASCII to lower case, other runes to
// ToLower(ToUpper(r)), which folds the Kelvin sign to k and the long s to s.
func foldKey(s string) string {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || (c >= 'A' && c <= 'Z') {
			plain = false
			break
		}
	}
	if plain {
		return s // lower-case ASCII already (the usual key): no allocation
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
