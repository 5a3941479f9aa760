package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/abema/go-mp4"
	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/handshake"
	"github.com/bluenviron/gortmplib/pkg/message"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
	"github.com/rs/zerolog"
	"github.com/transcoderd/transcoderd/internal/srt"
)

// rtmpClient connects a gortmplib client that publishes with key to h.
func rtmpClient(t *testing.T, h *Hub, key string) *gortmplib.Client {
	t.Helper()
	u, err := url.Parse("rtmp://" + h.RTMPAddr().String() + "/" + App + "#" + key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := &gortmplib.Client{URL: u, Publish: true}
	if err := c.Initialize(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// emptySPSConfig is an AVC sequence header whose SPS is empty: a malformed header
// that once crashed the daemon.
func emptySPSConfig() *message.Video {
	return &message.Video{
		ChunkStreamID: message.VideoChunkStreamID, MessageStreamID: 0x1000000, Codec: message.CodecH264,
		IsKeyFrame: true, Type: message.VideoTypeConfig,
		AVCConfig: &mp4.AVCDecoderConfiguration{
			AnyTypeBox:           mp4.AnyTypeBox{Type: mp4.BoxTypeAvcC()},
			ConfigurationVersion: 1, Profile: 66, Level: 30, LengthSizeMinusOne: 3,
			NumOfSequenceParameterSets: 1,
			SequenceParameterSets:      []mp4.AVCParameterSet{{Length: 0, NALUnit: []byte{}}},
			NumOfPictureParameterSets:  1,
			PictureParameterSets:       []mp4.AVCParameterSet{{Length: 4, NALUnit: []byte{0x68, 0xce, 0x3c, 0x80}}},
		},
	}
}

// TestEmptyParameterSet publishes a sequence header with an empty SPS, then a
// keyframe: the hub takes the publisher (without the empty NAL unit) and lives on.
func TestEmptyParameterSet(t *testing.T) {
	h, _ := newTestHub(t, 5*time.Second)
	st, key, _ := addStream(t, h, "stage-a")
	c := rtmpClient(t, h, key)
	if err := c.Write(emptySPSConfig()); err != nil {
		t.Fatal(err)
	}
	idr := &message.Video{ChunkStreamID: message.VideoChunkStreamID, MessageStreamID: 0x1000000, Codec: message.CodecH264,
		IsKeyFrame: true, Type: message.VideoTypeAU, AU: []byte{0, 0, 0, 2, 0x65, 0x88}}
	for i := range 8 { // past trackWait: the tracks are known without audio
		idr.DTS = time.Duration(i) * 100 * time.Millisecond
		if err := c.Write(idr); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := st.Wait(ctx); err != nil {
		t.Fatalf("the publisher never fed the stream: %v", err)
	}
}

// TestVideoUnitEmptyNALUs gives videoUnit access units with empty NAL units.
func TestVideoUnitEmptyNALUs(t *testing.T) {
	tests := []struct {
		name    string
		codec   string
		au      [][]byte
		ok, key bool
	}{
		{"h264 all empty", "h264", [][]byte{{}, nil}, false, false},
		{"h264 empty then idr", "h264", [][]byte{{}, {0x65, 0x88}}, true, true},
		{"h264 empty then sps", "h264", [][]byte{nil, {0x67, 1}}, false, false},
		{"h265 all empty", "h265", [][]byte{{}}, false, false},
		{"h265 empty then idr", "h265", [][]byte{{}, {19 << 1, 1}}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(Publisher{Video: tt.codec}, tracks{video: &tscodecs.H264{}}, func() {}, time.Now)
			u, ok := s.videoUnit(0, 0, tt.au)
			if ok != tt.ok || u.key != tt.key {
				t.Errorf("ok %v key %v, want %v %v", ok, u.key, tt.ok, tt.key)
			}
			for _, n := range u.data {
				if len(n) == 0 {
					t.Errorf("an empty NAL unit in %q", u.data)
				}
			}
		})
	}
}

// panicky is an Observer that panics when a publisher is counted.
type panicky struct{ counts }

func (p *panicky) Publishers(Protocol, int) { panic("observer failed") }

// TestHandlerPanic checks the backstop: a panic while handling a publisher closes its
// connection and ends it as the stream's publisher; the hub lives on.
func TestHandlerPanic(t *testing.T) {
	obs := &panicky{counts{rejected: map[string]int{}}}
	h, err := New(Config{RTMPListen: "127.0.0.1:0", ReadTimeout: 5 * time.Second, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	st, key, _ := addStream(t, h, "stage-a")
	done := make(chan struct{})
	st.OnEvent(func(e Event) {
		if e.Type == "publisher_gone" {
			close(done)
		}
	})
	c := rtmpClient(t, h, key)
	for _, m := range encoderMessages(t, true, true, true, 0) {
		if c.Write(m) != nil {
			break // the hub closed the connection already
		}
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the publisher whose handler panicked was not ended")
	}
	if p := st.Publisher(); p != nil {
		t.Errorf("publisher %+v after the panic, want none", p)
	}
}

// TestPreAuthLimit checks that one host holds at most maxPreAuthPerHost connections
// that are not yet authorized: the next is closed at once, counted as "limit".
func TestPreAuthLimit(t *testing.T) {
	h, c := newTestHub(t, 10*time.Second)
	for range maxPreAuthPerHost { // connected, silent: waiting for their handshake
		conn, err := net.Dial("tcp", h.RTMPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
	}
	time.Sleep(100 * time.Millisecond)
	conn, err := net.Dial("tcp", h.RTMPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	began := time.Now()
	if _, err := conn.Read(make([]byte, 1)); err == nil || time.Since(began) > 2*time.Second {
		t.Errorf("read %v after %v, want the connection closed at once", err, time.Since(began))
	}
	if n := c.rejections("limit"); n != 1 {
		t.Errorf("%d refusals for limit, want 1", n)
	}
}

// TestPreAuthFailuresCount checks that connections that end before their publish is
// authorized (a scanner, a flood) count against their address like refusals.
func TestPreAuthFailuresCount(t *testing.T) {
	h, _ := newTestHub(t, 10*time.Second)
	for range maxFailures {
		conn, err := net.Dial("tcp", h.RTMPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = conn.Write([]byte{3, 1, 2}) // half a handshake
		_ = conn.(*net.TCPConn).CloseWrite()
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, _ = io.Copy(io.Discard, conn) // until the hub closes it: one at a time
		_ = conn.Close()
	}
	deadline := time.Now().Add(3 * time.Second)
	for !h.lim.banned("127.0.0.1") {
		if time.Now().After(deadline) {
			t.Fatalf("%d failed handshakes did not ban their address", maxFailures)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAcceptOutOfDescriptors runs the process out of file descriptors while clients
// connect (Accept fails with EMFILE), then gives them back: the listener serves again.
func TestAcceptOutOfDescriptors(t *testing.T) {
	h, _ := newTestHub(t, 10*time.Second)
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = uint64(len(fds) + 12) // room for a few connections (both ends)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for range 64 {
		c, err := net.DialTimeout("tcp", h.RTMPAddr().String(), 200*time.Millisecond)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	time.Sleep(200 * time.Millisecond)
	for _, c := range conns {
		_ = c.Close()
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	h.lim.mu.Lock() // the connections closed in their handshake counted against 127.0.0.1
	clear(h.lim.fail)
	clear(h.lim.until)
	h.lim.mu.Unlock()
	conn, err := net.Dial("tcp", h.RTMPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, _, err := handshake.DoClient(conn, false, false); err != nil {
		t.Errorf("no handshake after the descriptors came back: %v", err)
	}
}

// overflowedStream is a stream whose publisher sent a keyframe and then more than
// maxGOPBytes: its GOP cache is dropped until the next keyframe.
func overflowedStream(t *testing.T) (*Stream, *session) {
	t.Helper()
	st := &Stream{id: "a", allow: map[Protocol]bool{RTMP: true}, queue: sinkQueue, obs: noObserver{}, changed: make(chan struct{})}
	sess := newSession(Publisher{Video: "h264"}, tracks{video: &tscodecs.H264{}}, func() {}, time.Now)
	if err := st.attach(sess); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1<<20)
	big[0] = 0x65 // IDR
	st.push(sess, unit{video: true, key: true, pts: 1, dts: 1, data: [][]byte{big}, size: len(big)})
	p := make([]byte, 1<<20)
	p[0] = 0x41 // non-IDR
	for range maxGOPBytes >> 20 {
		st.push(sess, unit{video: true, pts: 2, dts: 2, data: [][]byte{p}, size: len(p)})
	}
	if sess.caching {
		t.Fatal("the GOP cache was not dropped")
	}
	return st, sess
}

// TestOpenAfterGOPOverflow checks that a run opened while the GOP cache is dropped
// starts at the next keyframe, not in the middle of a GOP.
func TestOpenAfterGOPOverflow(t *testing.T) {
	st, sess := overflowedStream(t)
	r, err := st.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go func() { _, _ = io.Copy(io.Discard, r) }()
	k := st.sinks[0]
	st.push(sess, unit{video: true, pts: 3, dts: 3, data: [][]byte{{0x41, 2, 3}}, size: 3})
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.skip || k.backlog != 0 {
		t.Errorf("skip %v, %d units in the backlog: a run starts with a frame that is no keyframe", k.skip, k.backlog)
	}
}

// TestWriteGOPAfterOverflow checks that a probe waits for the next keyframe when the
// GOP cache was dropped, rather than take an empty one.
func TestWriteGOPAfterOverflow(t *testing.T) {
	st, sess := overflowedStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var buf bytes.Buffer
	if err := st.WriteGOP(ctx, &buf, 0); err == nil {
		t.Fatalf("WriteGOP wrote %d bytes of a dropped GOP cache", buf.Len())
	}
	st.push(sess, unit{video: true, key: true, pts: 4, dts: 4, data: [][]byte{{0x65, 1}}, size: 2})
	if err := st.WriteGOP(context.Background(), &buf, 0); err != nil || buf.Len() == 0 {
		t.Errorf("WriteGOP after the next keyframe: %d bytes, %v", buf.Len(), err)
	}
}

// TestGOPCacheCountsUnits caches two million tiny units after a keyframe: the cache
// bounds what they cost in memory, not only their bytes.
func TestGOPCacheCountsUnits(t *testing.T) {
	sess := newSession(Publisher{Video: "h264"}, tracks{video: &tscodecs.H264{}}, func() {}, time.Now)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	sess.cache(unit{video: true, key: true, data: [][]byte{{0x65}}, size: 1})
	nal := []byte{0x41, 0} // what a 6-byte RTMP video message holds
	for range 2_000_000 {
		sess.cache(unit{video: true, data: [][]byte{nal}, size: len(nal)})
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("%d units cached, costing %d; heap grew by %d MiB", len(sess.gop), sess.gopBytes, (int64(ms.HeapAlloc)-int64(before))>>20)
	if len(sess.gop) > maxGOPUnits || sess.gopBytes > maxGOPBytes {
		t.Errorf("%d units costing %d cached, want at most %d costing %d", len(sess.gop), sess.gopBytes, maxGOPUnits, maxGOPBytes)
	}
}

// TestSinkQueueBytes offers a run that reads nothing units of 1 MiB: its queue holds
// at most maxSinkBytes of them, then drops to the next keyframe.
func TestSinkQueueBytes(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	k := newSink(tracks{video: &tscodecs.H264{}}, w, sinkQueue)
	defer func() { _ = r.Close(); k.close() }()
	mib := make([]byte, 1<<20)
	mib[0] = 0x65
	behind := false
	for range 100 {
		behind = k.offer(unit{video: true, key: true, data: [][]byte{mib}, size: len(mib)}) || behind
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if q := len(k.buf) + k.inflight; !behind || q > maxSinkBytes {
		t.Errorf("queue holds %d bytes (behind %v), want at most %d", q, behind, maxSinkBytes)
	}
}

// countingConn is a msgConn that tells the bytes its messages' media hold as received.
type countingConn struct {
	msgConn
	n uint64
}

func (c *countingConn) BytesReceived() uint64 { return c.n }
func (c *countingConn) Read() (message.Message, error) {
	m, err := c.msgConn.Read()
	if a, ok := m.(*message.Audio); ok {
		c.n += uint64(len(a.AU))
	}
	return m, err
}

// TestFindTracksBytes sends media of 1 MiB a message and no sequence header: the hub
// keeps at most maxEarlyBytes of it while it waits for the headers.
func TestFindTracksBytes(t *testing.T) {
	c := &countingConn{}
	mib := make([]byte, 1<<20)
	for range 100 { // no time passes: findTracks waits on
		c.msgs = append(c.msgs, &message.Audio{Codec: message.CodecMPEG4Audio, AACType: message.AudioAACTypeAU, AU: mib})
	}
	r := &rtmpReader{conn: c}
	err := r.findTracks()
	if held := 100 - len(c.msgs); err == nil || held > maxEarlyBytes>>20+1 {
		t.Errorf("read %d messages of 1 MiB (%v), want an error after at most %d", held, err, maxEarlyBytes>>20+1)
	}
}

// received is an Observer that counts the media bytes received.
type received struct {
	counts
	n int
}

func (r *received) Received(_ string, n int) { r.n += n }

// TestHEVCHeaderSEI reads an HEVC sequence header whose arrays hold an SEI besides the
// parameter sets: the parameter sets are kept for the keyframes, and nothing of the
// header is taken as media.
func TestHEVCHeaderSEI(t *testing.T) {
	nalu := func(typ uint8, rest ...byte) mp4.HEVCNaluArray {
		n := append([]byte{typ << 1, 1}, rest...)
		return mp4.HEVCNaluArray{NaluType: typ, NumNalus: 1, Nalus: []mp4.HEVCNalu{{Length: uint16(len(n)), NALUnit: n}}}
	}
	header := &message.VideoExSequenceStart{FourCC: message.FourCCHEVC, HEVCConfig: &mp4.HvcC{
		NumOfNaluArrays: 4, NaluArrays: []mp4.HEVCNaluArray{nalu(32, 1), nalu(33, 2), nalu(34, 3), nalu(39, 4)}, // VPS SPS PPS SEI
	}}
	obs := &received{}
	st := &Stream{id: "a", allow: map[Protocol]bool{RTMP: true}, queue: sinkQueue, obs: obs, changed: make(chan struct{})}
	r := &rtmpReader{conn: &msgConn{msgs: []message.Message{header}}, tracks: rtmpTracks{video: "h265"}}
	a, b := net.Pipe()
	defer b.Close()
	sess := (&Hub{now: time.Now}).rtmpPublisher(a, Publisher{Protocol: RTMP}, r, st)
	if err := st.attach(sess); err != nil {
		t.Fatal(err)
	}
	if err := r.read(); err != nil {
		t.Fatal(err)
	}
	if len(sess.params) != 3 || obs.n != 0 {
		t.Errorf("%d parameter sets kept, %d bytes taken as media; want 3 and 0", len(sess.params), obs.n)
	}
}

// failedListener is an SRT listener whose socket failed: every Accept2 fails.
type failedListener struct {
	srtListener
	calls atomic.Int64
}

func (l *failedListener) Accept() (*srt.Request, error) {
	l.calls.Add(1)
	return nil, errors.New("read udp: use of a broken socket")
}

// TestSRTListenerFails checks that serveSRT returns on an error of its listener,
// which is for good, rather than spin on it.
func TestSRTListenerFails(t *testing.T) {
	h := &Hub{log: zerolog.New(zerolog.NewTestWriter(t))}
	ln := &failedListener{}
	h.wg.Add(1)
	done := make(chan struct{})
	go func() { h.serveSRT(ln); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatalf("serveSRT still runs after %d failed accepts", ln.calls.Load())
	}
}

// TestLimiterBan checks that an address that failed maxFailures times within
// failWindow is banned for failWindow from the last failure, and that a flood of
// other addresses does not lift its ban.
func TestLimiterBan(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(func() time.Time { return now })
	for i := range maxFailures { // one every 5 s: the first is 45 s old at the last
		if l.banned("a") {
			t.Fatalf("banned after %d failures", i)
		}
		l.failed("a")
		now = now.Add(5 * time.Second)
	}
	now = now.Add(20 * time.Second) // 60 s after the first failure, 20 s after the ban
	if !l.banned("a") {
		t.Fatal("the ban ended before failWindow passed since it began")
	}
	for i := range maxHosts + 1 {
		l.failed(fmt.Sprintf("10.0.%d.%d", i/256, i%256))
	}
	if !l.banned("a") {
		t.Error("a flood of other addresses lifted the ban")
	}
	if len(l.fail) > maxHosts {
		t.Errorf("%d addresses remembered, want at most %d", len(l.fail), maxHosts)
	}
	now = now.Add(failWindow)
	if l.banned("a") {
		t.Error("still banned after failWindow")
	}
}

// TestHoldThenStart checks a hub made with Hold: a client that connects before Start
// waits (no answer, no refusal) and is served once the hub starts.
func TestHoldThenStart(t *testing.T) {
	c := &counts{rejected: map[string]int{}}
	h, err := New(Config{RTMPListen: "127.0.0.1:0", Hold: true, Log: zerolog.New(zerolog.NewTestWriter(t)), Observer: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	conn, err := net.Dial("tcp", h.RTMPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(append([]byte{3}, make([]byte, 1536)...)); err != nil { // C0 C1
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes before Start, want nothing", n)
	}
	h.Start()
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadFull(conn, make([]byte, 1+1536)); err != nil { // S0 S1
		t.Errorf("no handshake after Start: %v", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.rejected) != 0 {
		t.Errorf("refusals %v, want none", c.rejected)
	}
}
