package audit

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	args := func() map[string]any {
		return map[string]any{
			"query":    "select *",
			"password": "hunter2",
			"auth":     map[string]any{"token": "t0k", "user": "alice", "deep": map[string]any{"pin": 1234.0}},
			"users": []any{
				map[string]any{"name": "a", "ssn": "111"},
				map[string]any{"name": "b", "ssn": "222"},
				"not an object",
			},
			"card": map[string]any{"number": "4111", "expiry": "12/30"},
		}
	}
	tests := []struct {
		name   string
		fields []string
		check  func(t *testing.T, got map[string]any)
	}{
		{"no fields copies", nil, func(t *testing.T, got map[string]any) {
			if diff := cmp.Diff(args(), got); diff != "" {
				t.Error(diff)
			}
		}},
		{"top level", []string{"password"}, func(t *testing.T, got map[string]any) {
			want := args()
			want["password"] = Redacted
			if diff := cmp.Diff(want, got); diff != "" {
				t.Error(diff)
			}
		}},
		{"nested path", []string{"auth.token", "auth.deep.pin"}, func(t *testing.T, got map[string]any) {
			want := args()
			want["auth"] = map[string]any{"token": Redacted, "user": "alice", "deep": map[string]any{"pin": Redacted}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Error(diff)
			}
		}},
		{"whole subtree", []string{"card"}, func(t *testing.T, got map[string]any) {
			if got["card"] != Redacted {
				t.Errorf("card = %v", got["card"])
			}
		}},
		{"through arrays", []string{"users.ssn"}, func(t *testing.T, got map[string]any) {
			want := args()
			want["users"] = []any{
				map[string]any{"name": "a", "ssn": Redacted},
				map[string]any{"name": "b", "ssn": Redacted},
				"not an object",
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Error(diff)
			}
		}},
		{"wildcard", []string{"*.token", "*.number"}, func(t *testing.T, got map[string]any) {
			if got["auth"].(map[string]any)["token"] != Redacted || got["card"].(map[string]any)["number"] != Redacted {
				t.Errorf("wildcard missed: %v", got)
			}
			if got["auth"].(map[string]any)["user"] != "alice" {
				t.Errorf("wildcard redacted too much: %v", got)
			}
		}},
		{"case-insensitive", []string{"PassWord", "AUTH.Token"}, func(t *testing.T, got map[string]any) {
			if got["password"] != Redacted || got["auth"].(map[string]any)["token"] != Redacted {
				t.Errorf("got %v", got)
			}
		}},
		{"missing paths and blanks are ignored", []string{"nope", "auth.nope.deeper", "query.x", " ", ""}, func(t *testing.T, got map[string]any) {
			if diff := cmp.Diff(args(), got); diff != "" {
				t.Error(diff)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := args()
			got := Redact(in, tt.fields)
			tt.check(t, got)
			if diff := cmp.Diff(args(), in); diff != "" {
				t.Errorf("Redact modified its input:\n%s", diff)
			}
		})
	}
	if Redact(nil, []string{"a"}) != nil {
		t.Error("Redact(nil) != nil")
	}
}
