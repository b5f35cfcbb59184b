package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestStringNeverPrints(t *testing.T) {
	const v = "hunter2-very-secret"
	s := String(v)
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "secret", s)
	j, _ := json.Marshal(struct{ S String }{s})
	outs := []string{fmt.Sprint(s), fmt.Sprintf("%v %s %+v %#v", s, s, s, s), buf.String(), string(j)}
	for _, o := range outs {
		if strings.Contains(o, v) {
			t.Errorf("secret leaked in %q", o)
		}
		if !strings.Contains(o, Redacted) {
			t.Errorf("output %q does not show %s", o, Redacted)
		}
	}
	if s.Reveal() != v {
		t.Fatalf("Reveal = %q", s.Reveal())
	}
}
