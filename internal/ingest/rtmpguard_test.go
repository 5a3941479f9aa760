package ingest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/handshake"
	"github.com/bluenviron/gortmplib/pkg/message"
)

// clientHandshake is what a client sends of a plain handshake: C0, C1, C2.
func clientHandshake() []byte { return append([]byte{3}, make([]byte, 2*1536)...) }

// publishCommands are the commands an encoder sends before its media, as ffmpeg and
// OBS send them (after a SetChunkSize of their own, which the cases add).
func publishCommands(key string) []message.Message {
	cmd := func(cs byte, stream uint32, name string, id int, args ...any) message.Message {
		return &message.CommandAMF0{ChunkStreamID: cs, MessageStreamID: stream, Name: name, CommandID: id, Arguments: args}
	}
	connect := amf0.Object{
		{Key: "app", Value: App}, {Key: "type", Value: "nonprivate"}, {Key: "flashVer", Value: "FMLE/3.0 (compatible; FMSc/1.0)"},
		{Key: "swfUrl", Value: "rtmp://127.0.0.1:1935/" + App}, {Key: "tcUrl", Value: "rtmp://127.0.0.1:1935/" + App},
		{Key: "fourCcList", Value: amf0.StrictArray{"av01", "vp09", "hvc1", "avc1"}},
	}
	return []message.Message{
		cmd(3, 0, "connect", 1, connect),
		cmd(3, 0, "releaseStream", 2, nil, key),
		cmd(3, 0, "FCPublish", 3, nil, key),
		cmd(3, 0, "createStream", 4, nil),
		cmd(4, 0x1000000, "publish", 5, nil, key, "live"),
	}
}

// pieceReader reads data n bytes at a time at most, as a socket may.
type pieceReader struct {
	data []byte
	n    int
}

func (r *pieceReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.data)
	r.data = r.data[k:]
	return k, nil
}

// TestPreAuthGuard reads what real and hostile clients send before their publish is
// authorized through the guard, with gortmplib's reader as the hub does, in reads of
// one byte and of many: real ones come through whole (the guard parses as gortmplib
// does), hostile ones are refused before gortmplib reads the chunk that would cost it.
func TestPreAuthGuard(t *testing.T) {
	commands := publishCommands(strings.Repeat("k", 32))
	chunked := func(size uint32, more ...message.Message) []byte {
		msgs := append([]message.Message{&message.SetChunkSize{Value: size}}, commands...)
		return append(clientHandshake(), rtmpStream(t, append(msgs, more...)...)...)
	}
	long := &message.Video{ChunkStreamID: message.VideoChunkStreamID, MessageStreamID: 0x1000000, Codec: message.CodecH264,
		Type: message.VideoTypeAU, AU: make([]byte, 1000), DTS: 0x1000000 * time.Millisecond} // extended timestamps
	huge := append(chunked(10<<20), 0x03, 0, 0, 0, 0xff, 0xff, 0xff, 20, 0, 0, 0, 0) // a message of 16 MiB
	var flood []message.Message
	for range 80 { // 80 KiB of commands
		flood = append(flood, &message.CommandAMF0{ChunkStreamID: 3, Name: "FCPublish", CommandID: 9, Arguments: []any{nil, strings.Repeat("x", 1000)}})
	}
	rtmpe := clientHandshake()
	rtmpe[0] = 6
	tests := []struct {
		name   string
		stream []byte
		want   error
	}{
		{"ffmpeg, chunks of 4096", chunked(4096), nil},
		{"gortmplib client, chunks of 65536", chunked(65536), nil},
		{"chunks of 128, extended timestamps", chunked(128, long), nil},
		{"chunks of 10 MiB", chunked(10 << 20), nil},
		{"a message of 16 MiB", huge, errPreAuthMessage},
		{"chunks of 1 byte", chunked(1), errChunkSize},
		{"rtmpe", rtmpe, errRTMPE},
		{"80 KiB of commands", chunked(4096, flood...), errPreAuthBytes},
	}
	for _, tt := range tests {
		for _, piece := range []int{1, 7, 64 << 10} {
			t.Run(tt.name, func(t *testing.T) {
				g := newPreAuth(&pieceReader{data: tt.stream, n: piece})
				if _, err := io.ReadFull(g, make([]byte, handshakeBytes)); err != nil {
					if !errors.Is(err, tt.want) || tt.want == nil {
						t.Fatalf("handshake: %v, want %v", err, tt.want)
					}
					return
				}
				bc := bytecounter.NewReader(g)
				mr := message.NewReader(bc, bc, func(uint32) error { return nil })
				n, err := 0, error(nil)
				for ; err == nil; n++ {
					_, err = mr.Read()
				}
				want := tt.want
				if want == nil {
					want = io.EOF
				}
				if !errors.Is(err, want) {
					t.Errorf("reads of %d bytes: %v after %d messages, want %v", piece, err, n-1, want)
				}
			})
		}
	}
}

// TestPreAuthHeldMedia sends a publish and, in the same write, a frame of 200 KiB
// (an encoder that does not wait for the publish's answer): the guard holds the frame
// back rather than refuse it, and hands it on whole once the publish is authorized.
func TestPreAuthHeldMedia(t *testing.T) {
	frame := &message.Video{ChunkStreamID: message.VideoChunkStreamID, MessageStreamID: 0x1000000, Codec: message.CodecH264,
		IsKeyFrame: true, Type: message.VideoTypeAU, AU: bytes.Repeat([]byte{0, 0, 0, 1, 0x65}, 40<<10)}
	msgs := append([]message.Message{&message.SetChunkSize{Value: 4096}}, publishCommands("key")...)
	stream := append(clientHandshake(), rtmpStream(t, append(msgs, frame)...)...)
	a, b := net.Pipe()
	defer a.Close()
	go func() { _, _ = b.Write(stream); _ = b.Close() }()
	c := newRTMPConn(a)
	if _, err := io.ReadFull(c, make([]byte, handshakeBytes)); err != nil {
		t.Fatal(err)
	}
	bc := bytecounter.NewReader(c)
	mr := message.NewReader(bc, bc, func(uint32) error { return nil })
	for range msgs {
		if _, err := mr.Read(); err != nil {
			t.Fatalf("before the publish: %v", err)
		}
	}
	if len(c.guard.rest()) == 0 {
		t.Fatal("nothing held back: the frame's header was not read before authorization")
	}
	c.buffered(time.Minute) // authorized
	m, err := mr.Read()
	if v, ok := m.(*message.Video); err != nil || !ok || len(v.AU) != len(frame.AU) {
		t.Fatalf("after authorization: %T, %v; want the frame of %d bytes", m, err, len(frame.AU))
	}
}

// TestPreAuthMemory makes maxPreAuth connections (from as many loopback addresses as
// the per-host limit needs) that announce a chunk size of 10 MiB, then the header of
// a message of 16 MiB, and send no more. gortmplib allocates the chunk before it reads
// it: 10 MiB a connection, 640 MiB in all, unless the guard refuses the header. The
// heap in use must not grow by more than maxPreAuth × (maxPreAuthBytes +
// maxPreAuthMessage) and some, and each connection must be closed at once.
func TestPreAuthMemory(t *testing.T) {
	h, _ := newTestHub(t, 10*time.Second)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapInuse
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := range maxPreAuth {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i/maxPreAuthPerHost))}}
		conn, err := d.Dial("tcp", h.RTMPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		if _, _, err := handshake.DoClient(conn, false, false); err != nil {
			t.Fatalf("connection %d: handshake: %v", i, err)
		}
		bc := bytecounter.NewWriter(conn)
		if err := message.NewWriter(bc, bc, false).Write(&message.SetChunkSize{Value: 10 << 20}); err != nil {
			t.Fatal(err)
		}
		// a type-0 chunk on stream 3: body length 0xFFFFFF, an AMF0 command, no body
		if _, err := conn.Write([]byte{0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	grew := int64(ms.HeapInuse) - int64(before)
	t.Logf("%d hostile connections: heap in use grew by %.1f MiB", len(conns), float64(grew)/(1<<20))
	if limit := int64(maxPreAuth*(maxPreAuthBytes+maxPreAuthMessage) + 8<<20); grew > limit {
		t.Errorf("heap in use grew by %d MiB, want under %d MiB", grew>>20, limit>>20)
	}
	for i, c := range conns {
		if _, err := c.Read(make([]byte, 4096)); err == nil || isTimeout(err) {
			t.Errorf("connection %d: %v, want it closed by the hub", i, err)
			break
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
