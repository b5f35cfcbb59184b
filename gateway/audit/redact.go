package audit

import "strings"

// Redacted replaces every value Redact (and the Error scrubber) removes.
const Redacted = "[redacted]"

// Redact returns a deep copy of args in which every field named by fields is
// replaced by "[redacted]". args is never modified. A nil args returns nil.
//
// A field is a dotted path of object keys, matched case-insensitively:
// "password" redacts the top-level key, "auth.password" a nested one. A path
// crossing an array applies to every element ("users.ssn" redacts the ssn of
// each object in the users array), and "*" matches any key ("*.token"
// redacts token one level down under every key). Keys that themselves contain
// a dot cannot be addressed. The whole value at the path is replaced, whatever
// its type (an object, an array, a number).
func Redact(args map[string]any, fields []string) map[string]any {
	if args == nil {
		return nil
	}
	paths := make([][]string, 0, len(fields))
	for _, f := range fields {
		if f = strings.TrimSpace(f); f != "" {
			paths = append(paths, strings.Split(f, "."))
		}
	}
	return redactMap(args, paths)
}

// redactMap copies m, applying paths relative to m.
func redactMap(m map[string]any, paths [][]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		var sub [][]string
		redacted := false
		for _, p := range paths {
			if p[0] != "*" && !strings.EqualFold(p[0], k) {
				continue
			}
			if len(p) == 1 {
				redacted = true
				break
			}
			sub = append(sub, p[1:])
		}
		if redacted {
			out[k] = Redacted
			continue
		}
		out[k] = redactValue(v, sub)
	}
	return out
}

// redactValue deep-copies v, applying paths to the objects in it.
func redactValue(v any, paths [][]string) any {
	switch x := v.(type) {
	case map[string]any:
		return redactMap(x, paths)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = redactValue(e, paths)
		}
		return out
	default:
		return v
	}
}
