package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// counts is an Observer that counts, for the tests.
type counts struct {
	mu        sync.Mutex
	rejected  map[string]int
	takeovers int
	pubs      int
}

func (c *counts) Publishers(_ Protocol, d int) { c.mu.Lock(); c.pubs += d; c.mu.Unlock() }
func (c *counts) Rejected(r string)            { c.mu.Lock(); c.rejected[r]++; c.mu.Unlock() }
func (c *counts) Received(string, int)         {}
func (c *counts) Takeover()                    { c.mu.Lock(); c.takeovers++; c.mu.Unlock() }

func (c *counts) rejections(reason string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rejected[reason]
}

// newTestHub starts a hub with an RTMP listener on a free loopback port.
func newTestHub(t *testing.T, timeout time.Duration) (*Hub, *counts) {
	t.Helper()
	c := &counts{rejected: map[string]int{}}
	h, err := New(Config{RTMPListen: "127.0.0.1:0", SRTListen: "127.0.0.1:0", ReadTimeout: timeout, Log: zerolog.New(zerolog.NewTestWriter(t)), Observer: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h, c
}

// addStream gives a job a stream with a new key; it returns the key and the RTMP URL
// to publish to.
func addStream(t *testing.T, h *Hub, id string) (*Stream, string, string) {
	t.Helper()
	st, key, urls := addStreamFor(t, h, id)
	return st, key, urls[RTMP]
}

// addStreamFor gives a job a stream with a new key that both protocols may publish
// to; it returns the key and the URL for each protocol, as ffmpeg takes them.
func addStreamFor(t *testing.T, h *Hub, id string) (*Stream, string, map[Protocol]string) {
	t.Helper()
	key, hash, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	st, err := h.Add(id, hash, []Protocol{RTMP, SRT})
	if err != nil {
		t.Fatal(err)
	}
	e := h.Endpoints(key, []Protocol{RTMP, SRT})
	return st, key, map[Protocol]string{RTMP: e.RTMPURL + "/" + e.StreamKey, SRT: e.SRTURL + "&pkt_size=1316"}
}

type probed struct {
	Streams []struct {
		CodecType string `json:"codec_type"`
		CodecName string `json:"codec_name"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

// drain opens the pipe of a run on st and reads it to its end, which it sends.
func drain(t *testing.T, st *Stream) <-chan []byte {
	t.Helper()
	r, err := st.Open()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(r)
		got <- b
	}()
	return got
}

// probeTS probes MPEG-TS read from a pipe: what ffprobe finds, and its streams as
// kind:codec.
func probeTS(t *testing.T, ts []byte) (probed, []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "got.ts")
	if err := os.WriteFile(path, ts, 0o644); err != nil {
		t.Fatal(err)
	}
	pr := ffprobe(t, path)
	var kinds []string
	for _, s := range pr.Streams {
		kinds = append(kinds, s.CodecType+":"+s.CodecName)
	}
	return pr, kinds
}

func ffprobe(t *testing.T, path string) probed {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p probed
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPublishFeedsPipe publishes with ffmpeg over each protocol, as OBS or a hardware
// encoder would, and checks that the pipe of a run carries the publisher's H.264 and
// AAC as MPEG-TS from a keyframe, that the API sees the publisher, and that the pipe
// ends when the publisher goes.
func TestPublishFeedsPipe(t *testing.T) {
	for _, p := range []Protocol{RTMP, SRT} {
		t.Run(string(p), func(t *testing.T) { testPublishFeedsPipe(t, p) })
	}
}

func testPublishFeedsPipe(t *testing.T, proto Protocol) {
	h, c := newTestHub(t, 10*time.Second)
	st, _, urls := addStreamFor(t, h, "stage-a")
	url := urls[proto]
	if _, err := st.Open(); err != ErrNoPublisher {
		t.Fatalf("open before a publisher: %v, want ErrNoPublisher", err)
	}
	pub := testmedia.Publish(t, url, testmedia.SourceOptions{Width: 320, Height: 180, FPS: 25})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.Wait(ctx); err != nil {
		t.Fatalf("no publisher: %v: %s", err, pub.Stderr())
	}
	p := st.Publisher()
	if p == nil || p.Protocol != proto || p.Video != "h264" || p.Audio != "aac" || p.Width != 320 || p.Height != 180 || p.FPS != 25 || (proto == RTMP && p.Encoder == "") {
		t.Errorf("publisher %+v, want %s h264 aac 320x180 at 25 fps (with an encoder string over rtmp)", p, proto)
	}
	got := drain(t, st)
	time.Sleep(3 * time.Second)
	pub.Kill()
	var ts []byte
	select {
	case ts = <-got:
	case <-time.After(12 * time.Second): // SRT learns a killed peer is gone after 5 s of silence (srt.Config's PeerIdleTimeout)
		t.Fatal("the pipe did not end with the publisher")
	}
	pr, kinds := probeTS(t, ts)
	if len(kinds) != 2 || kinds[0] != "video:h264" || kinds[1] != "audio:aac" || pr.Streams[0].Width != 320 {
		t.Errorf("pipe carried %v, want video:h264 (320 wide) and audio:aac", kinds)
	}
	if st.Publisher() != nil || c.pubs != 0 {
		t.Errorf("publisher %+v, %d counted, after it went", st.Publisher(), c.pubs)
	}
}

// TestRTMPRefused checks that what is not a publish with a known key is refused in the
// RTMP handshake: the client exits non-zero within 2 s, and the refusal is counted by
// reason.
func TestRTMPRefused(t *testing.T) {
	testmedia.RequireFFmpeg(t)
	h, c := newTestHub(t, 10*time.Second)
	_, key, url := addStream(t, h, "stage-a")
	base := "rtmp://" + h.RTMPAddr().String()
	tests := []struct {
		name, url, reason string
		play              bool
	}{
		{"wrong key", base + "/live/" + key + "x", "key", false},
		{"no key", base + "/live", "key", false},
		{"wrong app", base + "/other/" + key, "app", false},
		{"play", url, "play", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := c.rejections(tt.reason)
			args := []string{"-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10", "-t", "5", "-c:v", "libx264", "-preset", "ultrafast", "-f", "flv", tt.url}
			if tt.play {
				args = []string{"-hide_banner", "-loglevel", "error", "-i", tt.url, "-t", "1", "-f", "null", "-"}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			began := time.Now()
			out, err := exec.CommandContext(ctx, "ffmpeg", args...).CombinedOutput()
			if took := time.Since(began); err == nil || took > 2*time.Second {
				t.Errorf("ffmpeg ended after %v with %v, want an error within 2 s: %s", took.Round(time.Millisecond), err, out)
			}
			if n := c.rejections(tt.reason); n != before+1 {
				t.Errorf("%d refusals for %q, want %d", n, tt.reason, before+1)
			}
		})
	}
}

// TestRTMPTakeover checks that a second publisher with the same key takes over at
// once: the first is cut off, the run it fed sees its input end, and the stream is fed
// by the second.
func TestRTMPTakeover(t *testing.T) {
	h, c := newTestHub(t, 10*time.Second)
	st, _, url := addStream(t, h, "stage-a")
	var events []string
	var mu sync.Mutex
	st.OnEvent(func(e Event) { mu.Lock(); events = append(events, e.Type); mu.Unlock() })
	first := testmedia.Publish(t, url, testmedia.SourceOptions{Width: 160, Height: 90})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := st.Open()
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, r); close(ended) }()
	firstAddr := st.Publisher().Remote
	second := testmedia.Publish(t, url, testmedia.SourceOptions{Width: 160, Height: 90})
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the run fed by the first publisher was not ended by the takeover")
	}
	if exited, _ := first.Wait(5 * time.Second); !exited {
		t.Error("the first publisher was not cut off")
	}
	if err := st.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if p := st.Publisher(); p == nil || p.Remote == firstAddr {
		t.Errorf("publisher %+v, want the second one", p)
	}
	c.mu.Lock()
	takeovers := c.takeovers
	c.mu.Unlock()
	if takeovers != 1 {
		t.Errorf("%d takeovers counted, want 1", takeovers)
	}
	second.Kill()
	mu.Lock()
	defer mu.Unlock()
	if len(events) < 2 || events[0] != "publisher" || events[1] != "publisher_replaced" {
		t.Errorf("events %v, want publisher then publisher_replaced", events)
	}
}

// TestReadTimeout checks that a connection that sends nothing is closed after the
// read timeout: a half-open publisher cannot hold a port's goroutine for ever.
func TestReadTimeout(t *testing.T) {
	h, _ := newTestHub(t, 300*time.Millisecond)
	conn, err := net.Dial("tcp", h.RTMPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	began := time.Now()
	_, err = conn.Read(make([]byte, 1))
	if took := time.Since(began); err == nil || took > 3*time.Second {
		t.Errorf("read %v after %v, want the connection closed after the 300 ms timeout", err, took)
	}
}

// TestRemoveRefusesKey checks that a stream removed from the hub (its job ended) is
// refused from then on, and that a rotated key replaces the old one.
func TestRemoveRefusesKey(t *testing.T) {
	h, _ := newTestHub(t, time.Second)
	key, hash, _ := NewKey()
	st, err := h.Add("a", hash, []Protocol{RTMP})
	if err != nil {
		t.Fatal(err)
	}
	if h.find(key, RTMP) != st || h.find(key, SRT) != nil {
		t.Fatal("the key does not find its stream over rtmp only")
	}
	newKey, hash, _ := NewKey()
	st.SetKey(hash)
	if h.find(key, RTMP) != nil || h.find(newKey, RTMP) != st {
		t.Error("after a rotation the old key still finds the stream, or the new one does not")
	}
	h.Remove("a")
	if h.find(newKey, RTMP) != nil {
		t.Error("a removed stream is still found")
	}
	if err := st.Wait(context.Background()); err == nil {
		t.Error("waiting on a removed stream did not fail")
	}
}

func TestKeys(t *testing.T) {
	k1, h1, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, _, _ := NewKey()
	if len(k1) != 26 || k1 == k2 || HashKey(k1) != h1 || bytes.Contains(h1[:], []byte(k1)) {
		t.Errorf("keys %q %q: want 26 characters, different, hashed", k1, k2)
	}
	back, err := ParseHash(h1.String())
	if err != nil || back != h1 {
		t.Errorf("hash %s read back as %s, %v", h1, back, err)
	}
	if _, err := ParseHash("abc"); err == nil {
		t.Error("a short hash was read")
	}
}

// TestSRTRefused checks that an SRT caller whose stream id is not a publish with a
// known key is refused in the handshake: ffmpeg exits non-zero within 2 s.
func TestSRTRefused(t *testing.T) {
	testmedia.RequireFFmpeg(t)
	h, c := newTestHub(t, 10*time.Second)
	_, key, _ := addStreamFor(t, h, "stage-a")
	base := "srt://" + h.SRTAddr().String() + "?pkt_size=1316&streamid="
	tests := []struct{ name, streamID, reason string }{
		{"wrong key", "publish:" + key + "x", "key"},
		{"no mode", key, "key"},
		{"read", "read:" + key, "play"},
		{"access control read", "#!::r=" + key + ",m=request", "play"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := c.rejections(tt.reason)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			began := time.Now()
			out, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10",
				"-t", "5", "-c:v", "libx264", "-preset", "ultrafast", "-f", "mpegts", base+tt.streamID).CombinedOutput()
			if took := time.Since(began); err == nil || took > 2*time.Second {
				t.Errorf("ffmpeg ended after %v with %v, want an error within 2 s: %s", took.Round(time.Millisecond), err, out)
			}
			if n := c.rejections(tt.reason); n != before+1 {
				t.Errorf("%d refusals for %q, want %d", n, tt.reason, before+1)
			}
		})
	}
}

// TestSRTPassphrase checks that a stream's passphrase is enforced per connection: the
// publisher that encrypts with it is accepted, one without it or with another is
// refused in the handshake (within 2 s, counted), and a stream without one refuses
// an encrypting publisher.
func TestSRTPassphrase(t *testing.T) {
	testmedia.RequireFFmpeg(t)
	tests := []struct {
		name, stream, publisher string
		ok                      bool
	}{
		{"right", "correcthorse", "correcthorse", true},
		{"wrong", "correcthorse", "batterystaple", false},
		{"missing", "correcthorse", "", false},
		{"unexpected", "", "correcthorse", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, c := newTestHub(t, 10*time.Second)
			st, _, urls := addStreamFor(t, h, "enc")
			st.SetPassphrase(tt.stream)
			url := urls[SRT]
			if tt.publisher != "" {
				url += "&passphrase=" + tt.publisher
			}
			pub := testmedia.Publish(t, url, testmedia.SourceOptions{Width: 160, Height: 90})
			if tt.ok {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := st.Wait(ctx); err != nil {
					t.Fatalf("the publisher with the passphrase was not accepted: %v: %s", err, pub.Stderr())
				}
				return
			}
			if exited, err := pub.Wait(2 * time.Second); !exited || err == nil {
				t.Errorf("publisher exited %v with %v, want an error within 2 s", exited, err)
			}
			if n := c.rejections("passphrase"); n != 1 {
				t.Errorf("%d refusals for the passphrase, want 1", n)
			}
		})
	}
}
