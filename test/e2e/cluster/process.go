package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a process gets to exit after SIGTERM before its
// whole process group is killed.
const stopGrace = 10 * time.Second

// maxFirstLine bounds the buffered first stdout line, so a binary that
// writes megabytes without a newline cannot grow memory without limit.
const maxFirstLine = 64 << 10

// Process is a child process started by the harness. Its stdout and stderr
// go to LogPath; its first stdout line is kept (see FirstLine).
type Process struct {
	name    string
	path    string
	args    []string
	env     []string
	logPath string
	// logStart is where this run's output begins in the shared log file.
	logStart int64

	cmd  *exec.Cmd
	tap  *firstLineTap
	done chan struct{}
	// waitErr is written once before done is closed.
	waitErr error

	stopOnce sync.Once
	stopErr  error
}

// Name is the name the process was started under.
func (p *Process) Name() string { return p.name }

// LogPath is the file holding the process's stdout and stderr. Restarts of
// the same name append to it, after a header line.
func (p *Process) LogPath() string { return p.logPath }

// Pid is the process ID, which is also its process group ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Args are the command-line arguments, without the binary.
func (p *Process) Args() []string { return append([]string(nil), p.args...) }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the process's exit error once Done is closed (nil for a clean
// exit), and nil while it runs.
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.waitErr
	default:
		return nil
	}
}

// FirstLine waits for the first line the process writes to stdout and
// returns it without the newline. It fails when the process exits first or
// ctx ends.
func (p *Process) FirstLine(ctx context.Context) (string, error) {
	select {
	case <-p.tap.ready:
		return p.tap.line, nil
	default:
	}
	select {
	case <-p.tap.ready:
		return p.tap.line, nil
	case <-p.done:
		// The tap may have seen the line just before the exit.
		select {
		case <-p.tap.ready:
			return p.tap.line, nil
		default:
		}
		return "", fmt.Errorf("%s exited before printing a line (%v)%s", p.name, p.waitErr, p.logTailSuffix())
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for the first line of %s: %w%s", p.name, context.Cause(ctx), p.logTailSuffix())
	}
}

// LogTail returns up to the last n lines this run of the process logged.
func (p *Process) LogTail(n int) string {
	return tailFile(p.logPath, p.logStart, n)
}

func (p *Process) logTailSuffix() string {
	tail := p.LogTail(30)
	if tail == "" {
		return ""
	}
	return fmt.Sprintf("\n--- last lines of %s ---\n%s", p.logPath, tail)
}

// Stop sends SIGTERM to the process group, then SIGKILL after a grace
// period. It is safe to call more than once and after the process exited.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() { p.stopErr = p.stop(stopGrace) })
	return p.stopErr
}

// Kill sends SIGKILL to the process group at once, as an OOM kill or a
// machine losing power would end it, and waits for it to exit.
func (p *Process) Kill() error {
	p.stopOnce.Do(func() { p.stopErr = p.stop(0) })
	return p.stopErr
}

func (p *Process) stop(grace time.Duration) error {
	pgid := p.cmd.Process.Pid
	select {
	case <-p.done:
	default:
		sig := syscall.SIGTERM
		if grace == 0 {
			sig = syscall.SIGKILL
		}
		_ = syscall.Kill(-pgid, sig)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, pgid)
			}
		}
	}
	// Children the binary forked may outlive it in the same group.
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing the process group of %s: %w", p.name, err)
	}
	return nil
}

// startProcess starts path with args; env is added to the environment the
// harness itself runs with, after dropping names matched by drop.
func startProcess(logDir, name, path string, args, env []string, drop func(string) bool) (*Process, error) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	logPath := logDir + string(os.PathSeparator) + name + ".log"
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	logStart, err := logFile.Seek(0, io.SeekEnd)
	if err != nil {
		logFile.Close()
		return nil, err
	}
	fmt.Fprintf(logFile, "=== %s: %s %s\n", time.Now().Format(time.RFC3339), path, strings.Join(args, " "))

	base := os.Environ()
	if drop != nil {
		kept := base[:0:0]
		for _, kv := range base {
			if !drop(kv) {
				kept = append(kept, kv)
			}
		}
		base = kept
	}

	tap := &firstLineTap{w: logFile, ready: make(chan struct{})}
	cmd := exec.Command(path, args...)
	cmd.Env = append(base, env...)
	cmd.Stdout = tap
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	// A grandchild holding stdout open must not block Wait forever.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{
		name:     name,
		path:     path,
		args:     append([]string(nil), args...),
		env:      append([]string(nil), env...),
		logPath:  logPath,
		logStart: logStart,
		cmd:      cmd,
		tap:      tap,
		done:     make(chan struct{}),
	}
	go func() {
		p.waitErr = cmd.Wait()
		fmt.Fprintf(logFile, "=== %s: exited: %v\n", time.Now().Format(time.RFC3339), exitStatus(p.waitErr))
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

func exitStatus(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// firstLineTap copies everything to w and keeps the first line. exec runs
// one goroutine per non-file Writer, so Write is never called concurrently.
type firstLineTap struct {
	w     io.Writer
	buf   []byte
	line  string
	ready chan struct{}
	seen  bool
}

func (t *firstLineTap) Write(b []byte) (int, error) {
	if !t.seen {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			t.buf = append(t.buf, b[:i]...)
			t.finish()
		} else {
			t.buf = append(t.buf, b...)
			if len(t.buf) >= maxFirstLine {
				t.finish()
			}
		}
	}
	return t.w.Write(b)
}

func (t *firstLineTap) finish() {
	t.line = strings.TrimSuffix(string(t.buf), "\r")
	t.buf = nil
	t.seen = true
	close(t.ready)
}

// tailFile reads at most the last 256 KiB of a file from offset start and
// returns its last n lines; logs of a failed start are small, but a demo's
// may not be.
func tailFile(path string, start int64, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const window = 256 << 10
	if st, err := f.Stat(); err == nil && st.Size()-start > window {
		start = st.Size() - window
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return ""
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
