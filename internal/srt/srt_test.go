package srt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/srt"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// sourceFrames is how many video frames the test file holds (4 s at 25 fps), and
// leastFrames how many must arrive: libsrt drops what its sender still holds when
// ffmpeg closes it (libsrt's own listener receives 97 or 98 of this file's frames).
const (
	sourceFrames = 100
	leastFrames  = sourceFrames - 4
)

// source encodes the file the publishers send, once per test.
func source(t *testing.T) string {
	t.Helper()
	testmedia.RequireFFmpeg(t)
	path := filepath.Join(t.TempDir(), "source.ts")
	out, err := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
		"-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-b:v", "3M", "-c:a", "aac", "-f", "mpegts", path).CombinedOutput()
	if err != nil {
		t.Fatalf("encode the source: %v: %s", err, out)
	}
	return path
}

// publisher is ffmpeg sending a file to a listener at real time.
type publisher struct {
	cmd  *exec.Cmd
	done chan error // its exit error, with what it printed
}

// publish starts a publisher of file to url; the test's end kills it.
func publish(t *testing.T, file, url string) *publisher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	p := &publisher{done: make(chan error, 1)}
	p.cmd = exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-i", file, "-c", "copy", "-f", "mpegts", url)
	var out bytes.Buffer
	p.cmd.Stdout, p.cmd.Stderr = &out, &out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out.String())
		}
		p.done <- err
	}()
	return p
}

func listen(t *testing.T, cfg srt.Config) *srt.Listener {
	t.Helper()
	return listenAt(t, "127.0.0.1:0", cfg)
}

// listenAt is a listener on addr that the test's end closes.
func listenAt(t *testing.T, addr string, cfg srt.Config) *srt.Listener {
	t.Helper()
	l, err := srt.Listen(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func accept(t *testing.T, l *srt.Listener) *srt.Request {
	t.Helper()
	got := make(chan *srt.Request, 1)
	go func() {
		r, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	select {
	case r := <-got:
		if r == nil {
			t.FailNow()
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no request within 10 s")
		return nil
	}
}

// frames counts the video frames ffprobe decodes in ts.
func frames(t *testing.T, ts []byte) int {
	t.Helper()
	path := filepath.Join(t.TempDir(), "got.ts")
	if err := os.WriteFile(path, ts, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
		"-show_entries", "stream=nb_read_frames", "-of", "default=nw=1:nk=1", path).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	n, err := strconv.Atoi(strings.Fields(string(out) + " ?")[0])
	if err != nil {
		t.Fatalf("ffprobe said %q", out)
	}
	return n
}

// receive reads c to its end (the publisher's shutdown).
func receive(t *testing.T, c *srt.Conn) []byte {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(c)
		got <- b
	}()
	select {
	case b := <-got:
		return b
	case <-time.After(20 * time.Second):
		t.Fatal("the stream did not end within 20 s")
		return nil
	}
}

// takeAll accepts r, reads its stream to the end, and checks that the publisher exited
// 0 and that the frames arrived; it returns the connection, for its statistics.
func takeAll(t *testing.T, r *srt.Request, pub *publisher) *srt.Conn {
	t.Helper()
	c, err := r.Accept()
	if err != nil {
		t.Fatal(err)
	}
	ts := receive(t, c)
	if err := <-pub.done; err != nil {
		t.Fatalf("publisher: %v", err)
	}
	if n := frames(t, ts); n < leastFrames || n > sourceFrames {
		t.Errorf("%d video frames received, want %d to %d", n, leastFrames, sourceFrames)
	}
	return c
}

// TestPublish: ffmpeg (libsrt) publishes with a stream id; every frame arrives, and
// the connection ends when the publisher does.
func TestPublish(t *testing.T) {
	file := source(t)
	l := listen(t, srt.Config{})
	pub := publish(t, file, fmt.Sprintf("srt://%s?streamid=publish:abc&pkt_size=1316", l.Addr()))
	r := accept(t, l)
	if r.StreamID() != "publish:abc" || r.Encrypted() {
		t.Fatalf("stream id %q, encrypted %v; want publish:abc in the clear", r.StreamID(), r.Encrypted())
	}
	c := takeAll(t, r, pub)
	if s := c.Stats(); s.Received == 0 || s.RTT <= 0 {
		t.Errorf("stats %+v: want packets and a round-trip time", s)
	}
}

// TestPassphrase: the right passphrase decrypts every frame; a wrong one is found in
// the handshake and refused, and the publisher gives up at once.
func TestPassphrase(t *testing.T) {
	file := source(t)
	const pass = "passphrase-of-the-job"
	l := listen(t, srt.Config{})
	url := fmt.Sprintf("srt://%s?streamid=publish:k&pkt_size=1316&passphrase=%s&pbkeylen=32", l.Addr(), pass)

	pub := publish(t, file, url)
	r := accept(t, l)
	if !r.Encrypted() {
		t.Fatal("an encrypting caller is not seen as encrypted")
	}
	if err := r.SetPassphrase(pass); err != nil {
		t.Fatal(err)
	}
	c := takeAll(t, r, pub)
	if s := c.Stats(); s.Undecrypted != 0 {
		t.Errorf("%d packets did not decrypt", s.Undecrypted)
	}

	pub = publish(t, file, url)
	r = accept(t, l)
	if err := r.SetPassphrase("not the passphrase"); err == nil {
		t.Fatal("a wrong passphrase unwrapped the caller's key")
	}
	began := time.Now()
	r.Reject(srt.RejectBadSecret)
	select {
	case err := <-pub.done:
		if err == nil {
			t.Error("the refused publisher exited 0")
		}
		t.Logf("refused publisher exited %v after the refusal", time.Since(began).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Error("the refused publisher still runs 5 s after the refusal")
	}
}

// TestLossRecovered: a link that loses 5 % of the datagrams each way (a phone on a
// train); SRT asks again for what is lost and every frame arrives within the latency.
func TestLossRecovered(t *testing.T) {
	file := source(t)
	l := listen(t, srt.Config{Latency: 400 * time.Millisecond})
	proxy := lossyProxy(t, l.Addr().(*net.UDPAddr).AddrPort(), 0.05)
	pub := publish(t, file, fmt.Sprintf("srt://%s?streamid=publish:lossy&pkt_size=1316&latency=400000", proxy))
	s := takeAll(t, accept(t, l), pub).Stats()
	t.Logf("stats %+v", s)
	if s.Lost == 0 || s.Retransmitted == 0 {
		t.Errorf("stats %+v: want losses found and retransmissions received", s)
	}
}

// lossyProxy relays datagrams between one caller and to, dropping each with
// probability loss (after the handshake's first second, which it lets through).
func lossyProxy(t *testing.T, to netip.AddrPort, loss float64) netip.AddrPort {
	t.Helper()
	front, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close(); back.Close() })
	var mu sync.Mutex
	var caller netip.AddrPort
	began := time.Now()
	drop := func() bool { return time.Since(began) > time.Second && rand.Float64() < loss }
	go func() {
		b := make([]byte, 2048)
		for {
			n, from, err := front.ReadFromUDPAddrPort(b)
			if err != nil {
				return
			}
			mu.Lock()
			caller = from
			mu.Unlock()
			if !drop() {
				_, _ = back.Write(b[:n])
			}
		}
	}()
	go func() {
		b := make([]byte, 2048)
		for {
			n, err := back.Read(b)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			mu.Lock()
			to := caller
			mu.Unlock()
			if err == nil && !drop() {
				_, _ = front.WriteToUDPAddrPort(b[:n], to)
			}
		}
	}()
	return front.LocalAddr().(*net.UDPAddr).AddrPort()
}

// TestSilentPeerEnds: a publisher that stops sending anything (a frozen encoder, a
// pulled cable) is ended after PeerIdleTimeout; Read returns io.EOF.
func TestSilentPeerEnds(t *testing.T) {
	file := source(t)
	l := listen(t, srt.Config{PeerIdleTimeout: time.Second})
	pub := publish(t, file, fmt.Sprintf("srt://%s?streamid=publish:frozen&pkt_size=1316", l.Addr()))
	c, err := accept(t, l).Accept()
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan time.Time, 1)
	go func() {
		_, _ = io.Copy(io.Discard, c)
		ended <- time.Now()
	}()
	time.Sleep(time.Second)
	froze := time.Now()
	if err := pub.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-ended:
		t.Logf("ended %v after the publisher froze", at.Sub(froze).Round(time.Millisecond))
		if d := at.Sub(froze); d < time.Second {
			t.Errorf("ended %v after the publisher froze, before the idle timeout", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the connection still runs 5 s after its publisher froze (idle timeout 1 s)")
	}
}

// TestCloseEndsAll: closing the listener ends its connections and Accept.
func TestCloseEndsAll(t *testing.T) {
	file := source(t)
	l := listen(t, srt.Config{})
	pub := publish(t, file, fmt.Sprintf("srt://%s?streamid=publish:a&pkt_size=1316", l.Addr()))
	c, err := accept(t, l).Accept()
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, c)
		read <- err
	}()
	time.Sleep(500 * time.Millisecond)
	l.Close()
	select {
	case err := <-read:
		if err != nil {
			t.Errorf("read ended with %v, want io.EOF (nil from io.Copy)", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Read still blocks 2 s after the listener closed")
	}
	if _, err := l.Accept(); !errors.Is(err, srt.ErrClosed) {
		t.Errorf("accept after close: %v, want ErrClosed", err)
	}
	select {
	case err := <-pub.done:
		if err == nil {
			t.Error("the publisher exited 0 after its listener closed")
		}
	case <-time.After(5 * time.Second):
		t.Error("the publisher still runs 5 s after the listener closed (it was told)")
	}
}

// TestMalformedHandshake: a 65-byte handshake whose extension runs past its end (which
// panics gosrt's parser, and crashed a process on gosrt's own listener) is dropped,
// and the listener goes on taking publishers.
func TestMalformedHandshake(t *testing.T) {
	file := source(t)
	l := listen(t, srt.Config{})
	c, err := net.Dial("udp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bad := []byte("\x80\x000000000000\x00\x00\x00\x000000\x00\x0000000000000000\xff\xff\xff\xff0000000000000000000000000")
	for range 3 {
		if _, err := c.Write(bad); err != nil {
			t.Fatal(err)
		}
	}
	pub := publish(t, file, fmt.Sprintf("srt://%s?streamid=publish:after&pkt_size=1316", l.Addr()))
	takeAll(t, accept(t, l), pub)
}

// TestReplyFromDialledAddress: a listener on every address answers from the address
// the caller dialled (127.0.0.2 here, whose route's own source is 127.0.0.1): a caller
// takes replies from that address only, as on a host with several addresses.
func TestReplyFromDialledAddress(t *testing.T) {
	file := source(t)
	l := listenAt(t, "0.0.0.0:0", srt.Config{})
	port := l.Addr().(*net.UDPAddr).Port
	pub := publish(t, file, fmt.Sprintf("srt://127.0.0.2:%d?streamid=publish:second&pkt_size=1316", port))
	takeAll(t, accept(t, l), pub)
}

// TestDualStack: a listener on every address of both families (":port", as the daemon
// binds) takes an IPv4 caller, whose address the socket sees v4-mapped, and an IPv6 one.
func TestDualStack(t *testing.T) {
	file := source(t)
	l := listenAt(t, ":0", srt.Config{})
	port := l.Addr().(*net.UDPAddr).Port
	for _, host := range []string{"127.0.0.1", "[::1]"} {
		t.Run(host, func(t *testing.T) {
			if host == "[::1]" {
				c, err := net.ListenPacket("udp6", "[::1]:0")
				if err != nil {
					t.Skipf("no IPv6 loopback here: %v", err)
				}
				c.Close()
			}
			pub := publish(t, file, fmt.Sprintf("srt://%s:%d?streamid=publish:%s&pkt_size=1316", host, port, strings.Trim(host, "[]")))
			takeAll(t, accept(t, l), pub)
		})
	}
}
