package gpu

import (
	"context"
	"fmt"
	"strconv"

	"github.com/transcoderd/transcoderd/internal/encoder"
	"github.com/transcoderd/transcoderd/internal/ladder"
)

// sessions finds how many encoder sessions of backend the device opens at once:
// one ffmpeg with n outputs of the backend (a job with n hardware rungs does the
// same), n doubling from 2 until one fails or MaxSessions, then halving the gap.
func (p Prober) sessions(ctx context.Context, hw encoder.Hardware, backend string, tmp string) (n int, atLeast bool, failLine string) {
	try := func(n int) (bool, string) {
		rungs := make([]ladder.PlannedVideo, n)
		outs := make([]string, 0, 2*n)
		for i := range rungs {
			rungs[i] = trialRung(backend, "s"+strconv.Itoa(i), p.Width, p.Height)
			outs = append(outs, "null", "-")
		}
		args, err := trialArgs(hw, rungs, lavfiInput(p.Width, p.Height), outs)
		if err != nil {
			return false, err.Error()
		}
		ctx, cancel := context.WithTimeout(ctx, p.Timeout)
		defer cancel()
		_, stderr, err := run(ctx, p.FFmpeg, hw.Env(), args...)
		if err == nil {
			return true, ""
		}
		line, _, _ := reason(stderr)
		if ctx.Err() != nil {
			line = fmt.Sprintf("%d sessions did not finish in %s", n, p.Timeout)
		}
		return false, line
	}
	good, bad := 1, 0
	for n := 2; ; n *= 2 {
		n = min(n, p.MaxSessions)
		if n <= good {
			return good, true, ""
		}
		ok, line := try(n)
		if !ok {
			bad, failLine = n, line
			break
		}
		good = n
		if n == p.MaxSessions {
			return good, true, ""
		}
	}
	for bad-good > 1 && ctx.Err() == nil {
		mid := (good + bad) / 2
		if ok, line := try(mid); ok {
			good = mid
		} else {
			bad, failLine = mid, line
		}
	}
	return good, false, failLine
}
