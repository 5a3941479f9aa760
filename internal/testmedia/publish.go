package testmedia

import (
	"context"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Publisher is an encoder pushing to a server, as OBS does: ffmpeg sending
// liveArgs's test stream (libx264 and AAC, a keyframe every second) as FLV to an
// rtmp:// URL, or as MPEG-TS to an srt:// one, at real time until it is stopped.
type Publisher struct {
	t      testing.TB
	pid    int
	done   chan struct{}
	err    error // once done
	stderr *tail
	cancel context.CancelFunc
}

// Publish starts a publisher to url; the test's cleanup kills it.
func Publish(t testing.TB, url string, opts SourceOptions) *Publisher {
	t.Helper()
	RequireFFmpeg(t)
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	if o.HEVC && strings.HasPrefix(url, "rtmp://") {
		return publishERTMP(t, url, o)
	}
	format := []string{"-f", "flv"}
	if len(url) > 6 && url[:6] == "srt://" {
		format = []string{"-f", "mpegts"}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := groupCommand(ctx, "ffmpeg", slices.Concat(liveArgs(o), format, []string{url})...)
	p := &Publisher{t: t, done: make(chan struct{}), stderr: &tail{}, cancel: cancel}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start publisher: %v", err)
	}
	p.pid = cmd.Process.Pid
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.Kill)
	return p
}

// Kill kills the publisher at once (SIGKILL, as a crash or a pulled cable would end
// it) and waits for it to exit.
func (p *Publisher) Kill() {
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	p.cancel()
	<-p.done
}

// Exited is closed once the publisher has exited.
func (p *Publisher) Exited() <-chan struct{} { return p.done }

// Wait waits up to d for the publisher to exit: whether it did, and how (nil for
// exit status 0).
func (p *Publisher) Wait(d time.Duration) (exited bool, err error) {
	select {
	case <-p.done:
		return true, p.err
	case <-time.After(d):
		return false, nil
	}
}

// Stderr is the end of what the publisher printed.
func (p *Publisher) Stderr() string { return p.stderr.String() }
