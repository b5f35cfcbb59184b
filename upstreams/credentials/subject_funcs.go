package credentials

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"text/template"
)

// subjectFuncs are the functions a subject template may call. None has side
// effects or reaches outside its arguments. Every value they take or print
// goes through scalar: strings and integers only. The printing builtins
// (print, printf, println, html, js, urlquery) are replaced by strict
// versions, so nothing prints "<no value>", "<nil>" or "map[...]".
var subjectFuncs = template.FuncMap{
	"lower":      strFunc(strings.ToLower),
	"upper":      strFunc(strings.ToUpper),
	"trim":       strFunc(strings.TrimSpace),
	"trimPrefix": strFunc2(func(prefix, s string) string { return strings.TrimPrefix(s, prefix) }),
	"trimSuffix": strFunc2(func(suffix, s string) string { return strings.TrimSuffix(s, suffix) }),
	"replace": func(old, new, v any) (string, error) {
		xs, err := scalars(old, new, v)
		if err != nil {
			return "", err
		}
		return strings.ReplaceAll(xs[2], xs[0], xs[1]), nil
	},
	"split": func(sep, v any) ([]string, error) {
		xs, err := scalars(sep, v)
		if err != nil {
			return nil, err
		}
		return strings.Split(xs[1], xs[0]), nil
	},
	"join": func(sep any, list any) (string, error) {
		s, err := scalar(sep)
		if err != nil {
			return "", err
		}
		xs, err := stringList(list)
		if err != nil {
			return "", err
		}
		return strings.Join(xs, s), nil
	},
	"first": func(list any) (string, error) {
		xs, err := stringList(list)
		if err != nil || len(xs) == 0 {
			return "", err
		}
		return xs[0], nil
	},
	"last": func(list any) (string, error) {
		xs, err := stringList(list)
		if err != nil || len(xs) == 0 {
			return "", err
		}
		return xs[len(xs)-1], nil
	},
	"default": func(def string, v any) (string, error) {
		if v == nil {
			return def, nil
		}
		s, err := scalar(v)
		if err != nil || s != "" {
			return s, err
		}
		return def, nil
	},
	"print": func(args ...any) (string, error) {
		xs, err := printArgs(args)
		return fmt.Sprint(xs...), err
	},
	"println": func(args ...any) (string, error) {
		xs, err := printArgs(args)
		return fmt.Sprintln(xs...), err
	},
	"printf": func(format string, args ...any) (string, error) {
		xs, err := printArgs(args)
		if err != nil {
			return "", err
		}
		if out := fmt.Sprintf(format, xs...); !strings.Contains(out, "%!") {
			return out, nil
		}
		return "", fmt.Errorf("printf %q does not match its %d argument(s)", format, len(xs))
	},
	"html": func(args ...any) (string, error) {
		xs, err := printArgs(args)
		return template.HTMLEscapeString(fmt.Sprint(xs...)), err
	},
	"js": func(args ...any) (string, error) {
		xs, err := printArgs(args)
		return template.JSEscapeString(fmt.Sprint(xs...)), err
	},
	"urlquery": func(args ...any) (string, error) {
		xs, err := printArgs(args)
		return template.URLQueryEscaper(xs...), err
	},
	valueFunc: func(expr string, v any) (string, error) {
		s, err := scalar(v)
		if err != nil {
			return "", fmt.Errorf("%s: %w", expr, err)
		}
		return s, nil
	},
}

// valueFunc checks every value a template prints; parseSubjectTemplate
// appends it to each printing action's pipeline.
const valueFunc = "mandate_value"

func strFunc(f func(string) string) func(any) (string, error) {
	return func(v any) (string, error) {
		s, err := scalar(v)
		if err != nil {
			return "", err
		}
		return f(s), nil
	}
}

func strFunc2(f func(a, b string) string) func(a, b any) (string, error) {
	return func(a, b any) (string, error) {
		xs, err := scalars(a, b)
		if err != nil {
			return "", err
		}
		return f(xs[0], xs[1]), nil
	}
}

func scalars(vs ...any) ([]string, error) {
	out := make([]string, len(vs))
	for i, v := range vs {
		s, err := scalar(v)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// stringList turns a []string or a list claim into strings (each a scalar).
func stringList(v any) ([]string, error) {
	switch l := v.(type) {
	case []string:
		return l, nil
	case []any:
		return scalars(l...)
	}
	if _, err := scalar(v); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("is a %T, not a list", v)
}

// printArgs makes the arguments of a printing function strict: strings
// stay strings, integers become intArg (printed exactly by %s, %v and %d
// alike), and everything else is an error.
func printArgs(args []any) ([]any, error) {
	out := make([]any, len(args))
	for i, v := range args {
		s, err := scalar(v)
		if err != nil {
			return nil, err
		}
		out[i] = s
		if _, isStr := v.(string); !isStr {
			if n, ok := new(big.Int).SetString(s, 10); ok {
				out[i] = intArg{s: s, n: n}
			}
		}
	}
	return out, nil
}

// intArg is an integer argument of printf: integer verbs format the number
// (%08d), the others its exact decimal text.
type intArg struct {
	s string
	n *big.Int
}

func (a intArg) Format(f fmt.State, verb rune) {
	switch verb {
	case 'd', 'b', 'o', 'O', 'x', 'X':
		fmt.Fprintf(f, fmt.FormatString(f, verb), a.n)
	default:
		fmt.Fprintf(f, fmt.FormatString(f, verb), a.s)
	}
}

// withheld stands for an email-like value of an identity whose email is not
// verified: any use of it fails with ErrUnverifiedEmail.
type withheld struct{ name string }

// scalar is the only way a value becomes part of a platform username:
// strings as they are, integers exactly (a json.Number claim verbatim, a
// float64 only when it holds an integer exactly). Null, booleans, objects,
// lists and fractions are errors.
func scalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		if !isIntLiteral(string(x)) {
			return "", fmt.Errorf("is the number %s, not an integer; a platform username is built from strings and integers only", x)
		}
		return string(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case uint:
		return strconv.FormatUint(uint64(x), 10), nil
	case float64:
		return floatScalar(x)
	case float32:
		return floatScalar(float64(x))
	case nil:
		return "", errors.New("is null (or has no value); a platform username is built from strings and integers only")
	case bool:
		return "", errors.New("is a boolean; a platform username is built from strings and integers only")
	case withheld:
		return "", withheldError(x)
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Map, reflect.Struct:
		return "", errors.New("is an object; a platform username is built from strings and integers only (read one of its fields)")
	case reflect.Slice, reflect.Array:
		return "", errors.New("is a list; a platform username is built from strings and integers only (use first, last or join)")
	}
	return "", fmt.Errorf("is a %T; a platform username is built from strings and integers only", v)
}

func floatScalar(f float64) (string, error) {
	switch {
	case f != math.Trunc(f) || math.IsInf(f, 0):
		return "", fmt.Errorf("is the number %v, not an integer; a platform username is built from strings and integers only", f)
	case math.Abs(f) > 1<<53:
		return "", fmt.Errorf("is the number %v, not an exact integer (decoded as a float)", f)
	}
	return strconv.FormatInt(int64(f), 10), nil
}

// isIntLiteral reports whether s is an optional minus sign and digits.
func isIntLiteral(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
