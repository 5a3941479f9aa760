package ingest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// sink is the pipe of one ffmpeg run: a bounded queue of units, written as MPEG-TS by a
// goroutine of its own, so that an ffmpeg that reads slowly (or not at all) never
// stalls the publisher. When the queue is full the sink drops units up to the next
// keyframe. Its methods but run are called under the stream's lock.
type sink struct {
	units  chan unit
	w      *os.File
	skip   bool // dropping to the next keyframe
	closed bool
	failed atomic.Bool  // writing failed: ffmpeg is gone
	queued atomic.Int64 // what the units queued cost (unit.cost)
}

func newSink(tr tracks, w *os.File, queue int) *sink {
	k := &sink{units: make(chan unit, queue), w: w}
	go k.run(tr)
	return k
}

// offer queues u; it reports whether it had to drop to the next keyframe (the run fell
// behind) from this unit on.
func (k *sink) offer(u unit) (fellBehind bool) {
	if k.skip {
		if !u.key {
			return false
		}
		k.skip = false
	}
	if k.queued.Load()+int64(u.cost()) > maxSinkBytes {
		k.skip = true
		return true
	}
	select {
	case k.units <- u:
		k.queued.Add(int64(u.cost()))
		return false
	default:
		k.skip = true
		return true
	}
}

func (k *sink) dead() bool { return k.failed.Load() }

// close ends the queue: what is queued is written, then the pipe is closed, and the
// run reads the end of its input.
func (k *sink) close() {
	if !k.closed {
		k.closed = true
		close(k.units)
	}
}

// run writes the queue to the pipe until it is closed or the pipe breaks.
func (k *sink) run(tr tracks) {
	defer k.w.Close()
	bw := bufio.NewWriterSize(k.w, 64<<10)
	err := func() error {
		tw, err := newTSWriter(bw, tr)
		if err != nil {
			return err
		}
		for u := range k.units {
			k.queued.Add(-int64(u.cost()))
			if err := tw.write(u); err != nil {
				return err
			}
			if len(k.units) == 0 {
				if err := bw.Flush(); err != nil {
					return err
				}
			}
		}
		return bw.Flush()
	}()
	if err != nil {
		k.failed.Store(true)
		for range k.units { //nolint:revive // drained until closed, so that offers never block
		}
	}
}

// tsWriter writes units as MPEG-TS with mediacommon's writer.
type tsWriter struct {
	w            *mpegts.Writer
	video, audio *mpegts.Track
}

func newTSWriter(w io.Writer, tr tracks) (*tsWriter, error) {
	t := &tsWriter{}
	var all []*mpegts.Track
	if tr.video != nil {
		t.video = &mpegts.Track{Codec: tr.video}
		all = append(all, t.video)
	}
	if tr.audio != nil {
		t.audio = &mpegts.Track{Codec: tr.audio}
		all = append(all, t.audio)
	}
	t.w = &mpegts.Writer{W: w, Tracks: all}
	if err := t.w.Initialize(); err != nil {
		return nil, fmt.Errorf("mpeg-ts writer: %w", err)
	}
	if _, err := t.w.WriteTables(); err != nil {
		return nil, fmt.Errorf("mpeg-ts tables: %w", err)
	}
	return t, nil
}

// write writes one unit.
func (t *tsWriter) write(u unit) error {
	var err error
	switch {
	case u.video && t.video != nil:
		if _, ok := t.video.Codec.(*tscodecs.H265); ok {
			err = t.w.WriteH265(t.video, u.pts, u.dts, u.data)
		} else {
			err = t.w.WriteH264(t.video, u.pts, u.dts, u.data)
		}
	case !u.video && t.audio != nil:
		err = t.w.WriteMPEG4Audio(t.audio, u.pts, u.data)
	}
	if err != nil {
		return fmt.Errorf("write mpeg-ts: %w", err)
	}
	return nil
}

// writeTS writes units to w as one MPEG-TS stream.
func writeTS(w io.Writer, tr tracks, units []unit) error {
	bw := bufio.NewWriter(w)
	tw, err := newTSWriter(bw, tr)
	if err != nil {
		return err
	}
	for _, u := range units {
		if err := tw.write(u); err != nil {
			return err
		}
	}
	return bw.Flush()
}
