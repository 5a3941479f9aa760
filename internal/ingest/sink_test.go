package ingest

import (
	"io"
	"os"
	"testing"
	"time"

	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// TestSinkDropsToKeyframe checks that a run that does not read its pipe never blocks
// the publisher: once its queue is full the sink drops what comes, up to the next
// keyframe, and queues again from there once there is room.
func TestSinkDropsToKeyframe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	k := newSink(tracks{video: &tscodecs.H264{}}, w, 4)
	frame := func(key bool) unit {
		nal := make([]byte, 100<<10) // the pipe and the writer's buffer fill at once
		nal[0] = 1                   // a non-IDR slice
		if key {
			nal[0] = 5
		}
		return unit{video: true, key: key, pts: 90000, dts: 90000, data: [][]byte{nal}, size: len(nal)}
	}
	behind := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 50 && !behind; i++ {
			behind = k.offer(frame(i == 0))
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("offering to a sink nobody reads blocked")
	}
	if !behind {
		t.Fatal("a sink nobody reads never fell behind")
	}
	if k.offer(frame(false)) || !k.skip {
		t.Error("a frame after falling behind was not dropped")
	}
	go func() { _, _ = io.Copy(io.Discard, r) }()
	time.Sleep(200 * time.Millisecond) // the writer empties the queue into the reader
	if k.offer(frame(true)) || k.skip {
		t.Error("the next keyframe was not queued once there was room")
	}
	k.close()
}
