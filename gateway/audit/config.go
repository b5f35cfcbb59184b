package audit

import (
	"errors"
	"fmt"
	"time"
)

// Sink kinds (the values of audit.sink).
const (
	SinkStdout = "stdout"
	SinkFile   = "file"
)

// Fsync policies (the values of audit.fsync).
const (
	FsyncNone     = "none"
	FsyncEvery    = "every"
	FsyncInterval = "interval"
)

// Defaults applied to zero values.
const (
	DefaultSink          = SinkStdout
	DefaultFsync         = FsyncNone
	DefaultFsyncInterval = time.Second
)

// Config is the `audit:` section of config.yaml. Its zero value is valid and
// means: JSON lines on standard output, no fsync.
type Config struct {
	// Sink is where records go: "stdout" (default) or "file".
	Sink string `yaml:"sink" json:"sink"`
	// Path is the audit file, opened for append (mode 0600) and created if
	// missing. Required when sink is file; must be empty otherwise.
	Path string `yaml:"path" json:"path"`
	// Fsync is when the file is flushed to stable storage (file sink only):
	//   none     (default) rely on the OS page cache: a record is written to
	//            the kernel before Log returns, so it survives a crash of
	//            Mandate but not of the machine (power loss, kernel panic);
	//   every    Log returns only after fsync: survives machine crashes;
	//            concurrent records share one fsync (group commit), yet each
	//            operation waits for the disk (milliseconds on most disks);
	//   interval fsync at most every fsync_interval in the background: a
	//            machine crash loses at most that window.
	Fsync string `yaml:"fsync" json:"fsync"`
	// FsyncInterval is the period for fsync: interval (default 1s). It is
	// ignored by the other policies.
	FsyncInterval time.Duration `yaml:"fsync_interval" json:"fsync_interval"`
}

// withDefaults returns c with zero values replaced by the defaults.
func (c Config) withDefaults() Config {
	if c.Sink == "" {
		c.Sink = DefaultSink
	}
	if c.Fsync == "" {
		c.Fsync = DefaultFsync
	}
	if c.FsyncInterval == 0 {
		c.FsyncInterval = DefaultFsyncInterval
	}
	return c
}

// Validate reports every problem in c, each prefixed with its key path
// (for example "audit.path: required when sink is file"), joined with
// errors.Join. It has no side effects (it does not touch the file system).
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("audit.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	d := c.withDefaults()
	switch d.Sink {
	case SinkStdout:
		if c.Path != "" {
			bad("path", "only used when sink is file (sink is %s)", d.Sink)
		}
		if d.Fsync != FsyncNone {
			bad("fsync", "only applies when sink is file (sink is %s)", d.Sink)
		}
	case SinkFile:
		if c.Path == "" {
			bad("path", "required when sink is file")
		}
	default:
		bad("sink", "unknown sink %q (want stdout or file)", c.Sink)
	}
	switch d.Fsync {
	case FsyncNone, FsyncEvery, FsyncInterval:
	default:
		bad("fsync", "unknown policy %q (want none, every or interval)", c.Fsync)
	}
	if c.FsyncInterval < 0 {
		bad("fsync_interval", "must be positive, got %s", c.FsyncInterval)
	}
	return errors.Join(errs...)
}
