package testproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// ErrAddrInUse marks a start-up that failed because a listen address was
// taken: [FreePorts] releases its ports before the program binds them, so
// another process may take one in between. [StartRetrying] retries on it.
var ErrAddrInUse = errors.New("address already in use")

const (
	// pollInterval is how often WaitHTTP asks again.
	pollInterval = 50 * time.Millisecond
	// probeTimeout bounds one readiness request, so a listener that accepts
	// and then hangs does not use up the whole start-up deadline.
	probeTimeout = 5 * time.Second
	// errorLogBytes is how much of the output a start-up error quotes.
	errorLogBytes = 16 << 10
	// waitDelay bounds how long Wait waits for the output pipes after the
	// process exited (a surviving grandchild may hold them open).
	waitDelay = 2 * time.Second
)

// Command describes a program to start.
type Command struct {
	// Name is the program's name in errors ("hydra").
	Name string
	// Path is the executable.
	Path string
	// Args are the arguments after the program name.
	Args []string
	// Env is the whole environment, KEY=VALUE; nil inherits this process's.
	Env []string
	// Dir is the working directory; empty: this process's.
	Dir string
	// MaxLogBytes bounds the captured stdout+stderr. 0: DefaultMaxLogBytes.
	MaxLogBytes int
}

// Process is a running program started by [Start]. Its methods are safe for
// concurrent use.
type Process struct {
	name      string
	cmd       *exec.Cmd
	log       *TailBuffer
	exited    chan struct{}
	waitErr   error // set before exited is closed
	closeOnce sync.Once
	closeErr  error
}

// Start starts c in its own process group, its stdout and stderr captured in
// a [TailBuffer]. On Linux the kernel kills the program if the thread that
// started it dies without calling Close (a test binary killed by a timeout).
// The program runs until Close or until it exits by itself.
func Start(c Command) (*Process, error) {
	log := NewTailBuffer(c.MaxLogBytes)
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Env = c.Env
	cmd.Dir = c.Dir
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.WaitDelay = waitDelay
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", c.Path, err)
	}
	p := &Process{name: c.Name, cmd: cmd, log: log, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Pid is the process id (also the process group id on Linux).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the process has exited and been reaped.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// State is the exit state once Exited is closed, nil before.
func (p *Process) State() *os.ProcessState {
	select {
	case <-p.exited:
		return p.cmd.ProcessState
	default:
		return nil
	}
}

// Log returns the captured output (its last MaxLogBytes).
func (p *Process) Log() string { return p.log.String() }

// LogTail returns at most the last n bytes of the captured output, prefixed
// with "…" when some was left out.
func (p *Process) LogTail(n int) string { return p.log.Tail(n) }

// Close kills the process group, waits until the process is reaped and
// returns an error only if killing failed or the process had already exited
// by itself with a failure. Calling it again returns the same result.
func (p *Process) Close() error {
	p.closeOnce.Do(func() {
		select {
		case <-p.exited:
			// Exited on its own: that is worth reporting.
			if p.waitErr != nil {
				p.closeErr = fmt.Errorf("%s had already exited: %w", p.name, p.waitErr)
			}
			// Its group is not killed: once the leader is reaped its id
			// may belong to another process.
		default:
			if err := killGroup(p.cmd.Process.Pid); err != nil {
				// The group may be gone already; fall back to the process itself.
				if kerr := p.cmd.Process.Kill(); kerr != nil && !errors.Is(kerr, os.ErrProcessDone) {
					p.closeErr = fmt.Errorf("killing %s: %w", p.name, errors.Join(err, kerr))
				}
			}
			<-p.exited
		}
	})
	return p.closeErr
}

// WaitHTTP polls each URL in turn with GET until it answers 200 OK. It fails
// if the process exits first (the error quotes the end of its output) or ctx
// ends first (the error wraps ctx.Err() and names the URL). Either error
// also wraps [ErrAddrInUse] when the output says an address was in use.
func (p *Process) WaitHTTP(ctx context.Context, urls ...string) error {
	client := &http.Client{Timeout: probeTimeout}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for _, u := range urls {
		for {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return fmt.Errorf("readiness request for %s: %w", p.name, err)
			}
			resp, err := client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-p.exited:
				return p.addrInUse(fmt.Errorf("%s exited before becoming ready (%v); its log:\n%s", p.name, p.waitErr, p.LogTail(errorLogBytes)))
			case <-ctx.Done():
				return p.addrInUse(fmt.Errorf("waiting for %s to answer 200 at %s: %w; %s log:\n%s", p.name, u, ctx.Err(), p.name, p.LogTail(errorLogBytes)))
			case <-tick.C:
			}
		}
	}
	return nil
}

func (p *Process) addrInUse(err error) error {
	if strings.Contains(p.log.String(), "address already in use") {
		return fmt.Errorf("%w: %w", ErrAddrInUse, err)
	}
	return err
}

// StartRetrying calls start with ctx bounded by timeout (when ctx has no
// earlier deadline) up to three times while it fails with [ErrAddrInUse]
// and ctx is not done, and returns its last result. Only the start-up is
// bounded: the context start receives must not be used for the process's
// lifetime.
func StartRetrying[T any](ctx context.Context, timeout time.Duration, start func(context.Context) (T, error)) (T, error) {
	if _, has := ctx.Deadline(); !has {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var (
		v   T
		err error
	)
	for attempt := 0; attempt < 3; attempt++ {
		v, err = start(ctx)
		if err == nil || !errors.Is(err, ErrAddrInUse) || ctx.Err() != nil {
			break
		}
	}
	return v, err
}

// FreePorts returns n distinct loopback TCP ports that were free a moment
// ago: it binds 127.0.0.1:0 n times, then releases all of them.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free loopback port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
