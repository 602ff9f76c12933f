package chaos_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is one child process the harness starts, kills with SIGKILL and restarts. Its output
// goes to one log file across restarts.
type proc struct {
	name string
	bin  string
	args []string
	env  []string
	log  string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current process has exited
	killed  bool          // the current process was killed on purpose
	stopped bool          // the harness is shutting down: no more restarts
	starts  int
	// exits counts the times the process ended without being killed by the harness.
	exits int
}

func newProc(dir, name, bin string, env []string, args ...string) *proc {
	return &proc{name: name, bin: bin, args: args, env: env, log: filepath.Join(dir, name+".log")}
}

// start starts the process (again). onExit runs, outside the lock, when it ends by itself.
func (p *proc) start(onExit func(*proc)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return errors.New("harness is stopping")
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.starts++
	fmt.Fprintf(f, "=== %s start %d at %s\n", p.name, p.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.killed = cmd, done, false
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		p.mu.Lock()
		unexpected := !p.killed && !p.stopped
		if unexpected {
			p.exits++
		}
		p.mu.Unlock()
		close(done)
		if unexpected && onExit != nil {
			onExit(p)
		}
	}()
	return nil
}

// kill9 sends SIGKILL and waits until the process is gone.
func (p *proc) kill9() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if cmd == nil {
		p.mu.Unlock()
		return
	}
	p.killed = true
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// stop kills the process for good.
func (p *proc) stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.kill9()
}

// unexpectedExits is how many times the process ended without the harness killing it.
func (p *proc) unexpectedExits() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exits
}

// output returns the log file's content.
func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// tail returns the last n lines of the log.
func (p *proc) tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.output(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePorts returns n distinct free loopback ports. They are free when returned; the caller
// binds them at once (other tests run in parallel, so no port is ever fixed).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	var out []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return out
}

// waitFor polls cond every interval until it returns nil or within passes; it returns the
// last error.
func waitFor(within, interval time.Duration, cond func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(interval)
		<-t.C
	}
}

// lineWith returns the first line of s that contains sub.
func lineWith(s, sub string) (string, bool) {
	sc := bufio.NewScanner(bytes.NewReader([]byte(s)))
	for sc.Scan() {
		if strings.Contains(sc.Text(), sub) {
			return sc.Text(), true
		}
	}
	return "", false
}
