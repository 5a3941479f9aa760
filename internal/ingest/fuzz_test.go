package ingest

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"
)

// maxFuzzMessages bounds the messages one fuzz input is read as.
const maxFuzzMessages = 200

// FuzzRTMPMedia feeds what an authorized RTMP publisher sends after its publish (a
// chunk stream: sequence headers, access units, metadata) through the hub's media path
// (tracks, access units, parameter sets, GOP cache, a run's pipe): no input may panic.
// The seed corpus is in testdata/fuzz/FuzzRTMPMedia, and rtmpStream makes more.
func FuzzRTMPMedia(f *testing.F) {
	f.Add(rtmpStream(f, encoderMessages(f, true, true, true, 300*time.Millisecond)...))
	keyframe := &message.Video{ChunkStreamID: message.VideoChunkStreamID, MessageStreamID: 0x1000000, Codec: message.CodecH264,
		IsKeyFrame: true, Type: message.VideoTypeAU, AU: []byte{0, 0, 0, 2, 0x65, 0x88}, DTS: 600 * time.Millisecond}
	f.Add(rtmpStream(f, emptySPSConfig(), keyframe))
	f.Fuzz(func(t *testing.T, stream []byte) {
		var msgs []message.Message
		bc := bytecounter.NewReader(bytes.NewReader(stream))
		mr := message.NewReader(bc, bc, func(uint32) error { return nil })
		for len(msgs) < maxFuzzMessages {
			m, err := mr.Read()
			if err != nil {
				break
			}
			msgs = append(msgs, m)
		}
		r := &rtmpReader{conn: &msgConn{msgs: msgs}}
		if r.findTracks() != nil {
			return
		}
		st := &Stream{id: "fuzz", allow: map[Protocol]bool{RTMP: true}, queue: sinkQueue, obs: noObserver{}, changed: make(chan struct{})}
		a, b := net.Pipe()
		defer b.Close()
		sess := (&Hub{now: time.Now}).rtmpPublisher(a, Publisher{Protocol: RTMP}, r, st)
		if err := st.attach(sess); err != nil {
			t.Fatal(err)
		}
		got := (<-chan []byte)(nil)
		for r.read() == nil {
			if got == nil && st.Ready() {
				got = drain(t, st)
			}
		}
		st.remove()
		if got != nil {
			<-got
		}
	})
}

// rtmpStream is msgs as a chunk stream, as a publisher sends them.
func rtmpStream(tb testing.TB, msgs ...message.Message) []byte {
	tb.Helper()
	var buf bytes.Buffer
	bc := bytecounter.NewWriter(&buf)
	w := message.NewWriter(bc, bc, false)
	for _, m := range msgs {
		if err := w.Write(m); err != nil {
			tb.Fatal(err)
		}
	}
	return buf.Bytes()
}

// FuzzRTMPPreAuth feeds what a peer sends before its publish is authorized through the
// guard (after a plain handshake), in reads of the size the input sets, to gortmplib's
// chunk reader as the hub's gortmplib reads it: no input may panic, and no message may
// come through over maxPreAuthMessage (the guard parses as gortmplib does, or refuses).
func FuzzRTMPPreAuth(f *testing.F) {
	msgs := append([]message.Message{&message.SetChunkSize{Value: 4096}}, publishCommands("key")...)
	f.Add(uint8(7), rtmpStream(f, msgs...))
	f.Add(uint8(255), append(rtmpStream(f, &message.SetChunkSize{Value: 10 << 20}), 0x03, 0, 0, 0, 0xff, 0xff, 0xff, 20, 0, 0, 0, 0))
	f.Add(uint8(1), rtmpStream(f, &message.SetChunkSize{Value: 128}, &message.AbortMessage{ChunkStreamID: 3}))
	f.Fuzz(func(t *testing.T, piece uint8, stream []byte) {
		g := newPreAuth(&pieceReader{data: append(clientHandshake(), stream...), n: int(piece) + 1})
		if _, err := io.ReadFull(g, make([]byte, handshakeBytes)); err != nil {
			t.Fatal(err)
		}
		bc := bytecounter.NewReader(g)
		r := rawmessage.NewReader(g, bc, func(uint32) error { return nil })
		for range maxFuzzMessages {
			m, err := r.Read()
			if err != nil {
				return
			}
			if len(m.Body) > maxPreAuthMessage {
				t.Fatalf("a message of %d bytes came through", len(m.Body))
			}
			if m.Type != 1 && m.Type != 2 {
				continue
			}
			if len(m.Body) != 4 {
				return // gortmplib's message reader fails there
			}
			v := uint32(m.Body[0])<<24 | uint32(m.Body[1])<<16 | uint32(m.Body[2])<<8 | uint32(m.Body[3])
			if m.Type == 2 { // what gortmplib's message reader does with them
				r.AbortChunkStream(v)
			} else if r.SetChunkSize(v) != nil {
				return
			}
		}
	})
}
