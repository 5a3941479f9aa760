package testmedia

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// StartRTMP serves a live RTMP stream at rtmp://127.0.0.1:<port>/live/key
// until the test ends, and returns once the port accepts connections.
//
// The RTMP is ffmpeg's own: `ffmpeg -re -f lavfi ... -f flv -listen 1`.
// Such an ffmpeg serves a single client and then exits, so a listener in the
// test process stands in front of it, starts a fresh ffmpeg for every
// client that connects, and pipes the bytes through untouched. Any number
// of clients may therefore connect, one after another or at once, and there
// is no window in which the port refuses them, as with a real RTMP server.
// Each client gets the stream from its start (a keyframe first).
func StartRTMP(t testing.TB, opts SourceOptions) *Source {
	t.Helper()
	RequireFFmpeg(t)
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		t.Fatalf("testmedia: rtmp source options: %v", err)
		return nil
	}
	if opts.AudioTracks > 1 {
		t.Fatalf("testmedia: rtmp source options: %d audio tracks: FLV carries one; use StartRTSP", opts.AudioTracks)
		return nil
	}
	// Reserve the port now so the URL is fixed across Pause and Resume.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testmedia: rtmp listen: %v", err)
		return nil
	}
	r := &rtmpServer{t: t, opts: opts, addr: ln.Addr().String(), ln: ln}
	return newSource(t, "rtmp://"+r.addr+"/live/key", r, nil)
}

// rtmpServer is the listener in front of the per-client ffmpegs.
type rtmpServer struct {
	t    testing.TB
	opts SourceOptions
	addr string

	ln      net.Listener // while serving; the first one comes from StartRTMP
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started pidSet

	portsMu sync.Mutex
	ports   map[int]bool // private ports handed to running ffmpegs
}

// reservePort returns a free private port no other client's ffmpeg holds.
func (r *rtmpServer) reservePort() (int, error) {
	r.portsMu.Lock()
	defer r.portsMu.Unlock()
	for range 100 {
		port, err := freeTCPPort()
		if err != nil {
			return 0, err
		}
		if !r.ports[port] {
			if r.ports == nil {
				r.ports = make(map[int]bool)
			}
			r.ports[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

func (r *rtmpServer) releasePort(port int) {
	r.portsMu.Lock()
	defer r.portsMu.Unlock()
	delete(r.ports, port)
}

func (r *rtmpServer) pids() []int { return r.started.list() }

func (r *rtmpServer) start() error {
	if r.ln == nil {
		ln, err := net.Listen("tcp", r.addr)
		if err != nil {
			return fmt.Errorf("listen again on %s: %w", r.addr, err)
		}
		r.ln = ln
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	ln := r.ln
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.accept(ctx, ln)
	}()
	return nil
}

func (r *rtmpServer) stop() {
	if r.cancel != nil {
		r.cancel()
	}
	if r.ln != nil {
		_ = r.ln.Close()
		r.ln = nil
	}
	r.wg.Wait()
}

func (r *rtmpServer) accept(ctx context.Context, ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return // closed by stop
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.serve(ctx, conn)
		}()
	}
}

// serve starts an ffmpeg RTMP server on a private port for client, and
// pipes between them until either side is done or the source stops.
func (r *rtmpServer) serve(ctx context.Context, client net.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer client.Close()

	port, err := r.reservePort()
	if err != nil {
		r.t.Logf("testmedia: rtmp: %v", err)
		return
	}
	defer r.releasePort(port)
	private := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := append(liveArgs(r.opts), "-f", "flv", "-listen", "1", "rtmp://"+private+"/live/key")
	cmd := groupCommand(ctx, "ffmpeg", args...)
	var stderr tail
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		r.t.Logf("testmedia: rtmp: start ffmpeg: %v", err)
		return
	}
	r.started.add(cmd.Process.Pid)
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	defer func() {
		cancel() // kills the group if it still runs
		<-exited
	}()

	upstream, err := dialRetry(ctx, private, exited, 10*time.Second)
	if err != nil {
		if ctx.Err() == nil {
			r.t.Logf("testmedia: rtmp: ffmpeg never listened on %s: %v\n%s", private, err, stderr.String())
		}
		return
	}
	defer upstream.Close()
	stopClose := context.AfterFunc(ctx, func() {
		_ = client.Close()
		_ = upstream.Close()
	})
	defer stopClose()

	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(upstream, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, upstream); done <- struct{}{} }()
	<-done
	_ = client.Close()
	_ = upstream.Close()
	<-done
}

// dialRetry dials addr until it answers, ctx ends, exited is closed or
// limit has passed.
func dialRetry(ctx context.Context, addr string, exited <-chan struct{}, limit time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(limit)
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return conn, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-exited:
			return nil, errors.New("ffmpeg exited")
		case <-time.After(20 * time.Millisecond):
		}
	}
}
