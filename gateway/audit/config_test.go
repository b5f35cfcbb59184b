package audit

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings, one per expected problem; nil = valid
	}{
		{"zero value", Config{}, nil},
		{"stdout", Config{Sink: "stdout", Fsync: "none", FsyncInterval: time.Second}, nil},
		{"file", Config{Sink: "file", Path: "/var/log/mandate/audit.log"}, nil},
		{"file every", Config{Sink: "file", Path: "a.log", Fsync: "every"}, nil},
		{"file interval", Config{Sink: "file", Path: "a.log", Fsync: "interval", FsyncInterval: 250 * time.Millisecond}, nil},
		{"file without path", Config{Sink: "file"}, []string{"audit.path: required when sink is file"}},
		{"unknown sink", Config{Sink: "syslog"}, []string{`audit.sink: unknown sink "syslog"`}},
		{"path with stdout", Config{Path: "a.log"}, []string{"audit.path: only used when sink is file"}},
		{"fsync with stdout", Config{Fsync: "every"}, []string{"audit.fsync: only applies when sink is file"}},
		{"unknown fsync", Config{Sink: "file", Path: "a", Fsync: "always"}, []string{`audit.fsync: unknown policy "always"`}},
		{"negative interval", Config{Sink: "file", Path: "a", Fsync: "interval", FsyncInterval: -time.Second}, []string{"audit.fsync_interval: must be positive"}},
		{"several at once", Config{Sink: "file", Fsync: "sometimes", FsyncInterval: -1}, []string{"audit.path", "audit.fsync:", "audit.fsync_interval"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			got := strings.Split(err.Error(), "\n")
			if len(got) != len(tt.want) {
				t.Fatalf("Validate() = %q, want %d problems", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	t.Parallel()
	src := `
sink: file
path: /var/log/mandate/audit.log
fsync: interval
fsync_interval: 250ms
`
	var got Config
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := Config{Sink: SinkFile, Path: "/var/log/mandate/audit.log", Fsync: FsyncInterval, FsyncInterval: 250 * time.Millisecond}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded config (-want +got):\n%s", diff)
	}
	dec = yaml.NewDecoder(strings.NewReader("sink: file\nfsnyc: every\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&Config{}); err == nil || !strings.Contains(err.Error(), "fsnyc") {
		t.Errorf("typo not rejected: %v", err)
	}
}
