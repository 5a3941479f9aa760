package gpu

import (
	"bytes"
	"context"
	"strings"
	"time"

	"github.com/transcoderd/transcoderd/internal/supervise"
)

// maxStderr caps how much of a child's stderr is kept.
const maxStderr = 64 << 10

// run runs a short command and returns its stdout and its stderr lines. It is
// the one way the probe starts a process (ffmpeg's listings, nvidia-smi, the
// VAAPI driver check, the trial clip, trial encodes and session counts), and it
// starts it as jobs do (internal/supervise): its own process group and the
// parent-death signal, so a daemon killed mid-probe leaves no ffmpeg behind.
func run(ctx context.Context, name string, env []string, args ...string) ([]byte, []string, error) {
	out, lines, _, err := runTimed(ctx, name, env, args...)
	return out, lines, err
}

// runTimed is run that also returns the processor time the command used (a trial
// encode's, to cost hardware rungs under the CPU cap).
func runTimed(ctx context.Context, name string, env []string, args ...string) ([]byte, []string, time.Duration, error) {
	var stdout bytes.Buffer
	stderr := &capped{max: maxStderr}
	res := supervise.Run(ctx, supervise.Spec{Path: name, Args: args, Env: env, Stdout: &stdout, Stderr: stderr, Grace: 5 * time.Second})
	var lines []string
	for _, l := range strings.FieldsFunc(string(stderr.buf), func(r rune) bool { return r == '\n' || r == '\r' }) {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return stdout.Bytes(), lines, res.CPU, res.Err
}

// capped keeps the first max bytes written to it.
type capped struct {
	buf []byte
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
