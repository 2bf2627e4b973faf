package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// hookEnv is the environment a hook gets on top of peer-finder's own.
func hookEnv(base []string, d Data) []string {
	ord := ""
	if d.Ordinal >= 0 {
		ord = strconv.Itoa(d.Ordinal)
	}
	env := append([]string(nil), base...)
	return append(env,
		"PEERS="+strings.Join(d.Names(), ","),
		"PEER_COUNT="+strconv.Itoa(len(d.Peers)),
		"SELF="+d.Self,
		"ORDINAL="+ord,
	)
}

// peerLines is a hook's standard input: one fully qualified name a line.
func peerLines(d Data) string {
	var b strings.Builder
	for _, n := range d.Names() {
		b.WriteString(n)
		b.WriteByte('\n')
	}
	return b.String()
}

// runHook runs args (a program and its arguments, no shell) with the peers
// on its standard input and in its environment. When ctx ends while it
// runs, the hook gets SIGTERM, and SIGKILL if it is still there after
// grace. A hook that fails is a *HookError with its exit status (128 plus
// the signal's number if a signal ended it; 126 if it could not start).
//
// A program the kernel cannot execute (ENOEXEC: a script without a #!
// line) is run again as /bin/sh <program> <arguments>, as execvp does.
func runHook(ctx context.Context, flagName string, args []string, d Data, base []string, stdout, stderr io.Writer, grace time.Duration) error {
	command := func(name string, arg ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, name, arg...)
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = grace
		cmd.Stdin = strings.NewReader(peerLines(d))
		cmd.Stdout, cmd.Stderr = stdout, stderr
		cmd.Env = hookEnv(base, d)
		return cmd
	}
	cmd := command(args[0], args[1:]...)
	err := cmd.Start()
	if errors.Is(err, syscall.ENOEXEC) {
		cmd = command("/bin/sh", append([]string{cmd.Path}, args[1:]...)...)
		err = cmd.Start()
	}
	if err != nil {
		return &HookError{Hook: flagName, Code: 126, Err: err}
	}
	err = cmd.Wait()
	if err == nil {
		return nil
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code := exit.ExitCode()
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return &HookError{Hook: flagName, Code: code, Err: fmt.Errorf("%s: %w", args[0], err)}
	}
	// The hook exited 0 after SIGTERM (Wait reports the context's end), or
	// its output could not be copied.
	if ctx.Err() != nil && cmd.ProcessState != nil && cmd.ProcessState.Success() {
		return nil
	}
	return &HookError{Hook: flagName, Code: ExitFailure, Err: fmt.Errorf("%s: %w", args[0], err)}
}
