// Package export turns a clip of a job's CMAF segments into one progressive MP4 file
// for upload elsewhere: one video rung and one audio track, remuxed by ffmpeg with
// -c copy (never re-encoded), with the moov before the media (faststart), written under
// a temporary name and renamed into place when whole.
//
// ffmpeg reads each track as one fragmented MP4 stream on a pipe (pipe:3 for video,
// pipe:4 for audio): the init segment of the track's first run, then every media
// segment in order, as they are on disk except for the tfdt of each fragment, which is
// shifted onto the file's timeline. That timeline starts at 0 with the earliest track
// of the clip (the other starts where it started relative to it, so audio and video stay
// in sync), and each later run (an ffmpeg restart, whose media times start again near
// 0) begins where the run before it ended: the seconds lost in a restart are not in the
// file, and its duration is the sum of its runs'. Both tracks of a run are shifted by the
// same time. Nothing is copied to disk on the way: the segments are read one at a time.
package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/fileio"
	"github.com/transcoderd/transcoderd/internal/supervise"
)

// ErrCodecChange is returned (wrapped) when the runs of a track differ in their sample
// entry (codec parameters: an NVENC run and the x264 run after a fallback, say) or
// timescale. An MP4 track written by ffmpeg has one sample entry, so such a clip cannot
// be copied into one file without re-encoding; export it run by run instead.
var ErrCodecChange = errors.New("the clip's runs differ in codec parameters")

// Clip is what MP4 writes: a video track, an audio track, or both. Run k of one track
// and run k of the other must come from the same ffmpeg run (they are shifted by the
// same time), so when both are given they have the same number of runs.
type Clip struct {
	Video, Audio Track
}

// Track is one rendition's part of a clip: its runs, oldest first. A track without runs
// is left out of the file.
type Track struct {
	Runs []Run
}

// Run is the part of a track one ffmpeg run wrote: the path of its init segment and the
// paths of its media segments, in order, without gaps. A clip that crosses a restart
// has one Run per ffmpeg run, each with its own init segment.
type Run struct {
	Init     string
	Segments []string
}

// StatsPeriod is how often ffmpeg reports its progress during an export.
const StatsPeriod = 500 * time.Millisecond

// MP4 writes c into the MP4 file out with the ffmpeg binary at ffmpegPath ("ffmpeg"
// when empty), replacing any file there. The file is written as a hidden temporary
// file in out's folder (".<name>.*.part") and renamed to out once ffmpeg has finished,
// so out is either absent, the old file, or whole. progress, when not nil, is called on
// MP4's goroutine as ffmpeg goes (every StatsPeriod), with the media time written so
// far and the clip's duration (total: the sum of its runs), and once more with done ==
// total on success. When ctx ends, ffmpeg is killed, the partial file removed and ctx's
// error returned (wrapped). Errors name the segment or ffmpeg's last line of stderr.
func MP4(ctx context.Context, ffmpegPath string, c Clip, out string, progress func(done, total time.Duration)) error {
	if ffmpegPath == "" {
		ffmpegPath = "ffmpeg"
	}
	tracks, total, err := plan(c)
	if err != nil {
		return fmt.Errorf("export %s: %w", out, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.part")
	if err != nil {
		return fmt.Errorf("export %s: %w", out, err)
	}
	tmp.Close()
	// CreateTemp makes the file 0600 and ffmpeg keeps the mode when it truncates it:
	// the file is served, so it is made readable like the segments are.
	err = os.Chmod(tmp.Name(), 0o644)
	if err == nil {
		err = run(ctx, ffmpegPath, tracks, tmp.Name(), func(done time.Duration) {
			if progress != nil {
				progress(min(done, total), total)
			}
		})
	}
	if err == nil {
		err = os.Rename(tmp.Name(), out)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("export %s: %w", out, err)
	}
	if progress != nil {
		progress(total, total)
	}
	return nil
}

// Args returns ffmpeg's argv (without the program name) that remuxes the tracks it is
// given on descriptors 3, 4... (n of them, video first) into the MP4 file out.
//
//   - -copyts: the times are those of the streams as fed (see the package comment); left
//     to itself ffmpeg would move each input to start at 0 on its own, audio and video
//     apart by as much as the difference of their first segments' starts;
//   - -f mov on each input: a pipe cannot be probed by its name;
//   - -thread_queue_size 1024 on each input: with ffmpeg's default of 8 packets, an
//     input on a pipe often had none ready when its turn came, and ffmpeg slept 10 ms
//     each time: 8.4 s instead of 0.34 s for 3 minutes of a 360p rung and its audio
//     (ffmpeg 5.1). A queue holds packets, not bytes: 1024 of a 6 Mbit/s rung at 30 fps
//     are about 25 MB at most;
//   - -c copy: no stream is decoded or encoded;
//   - -movflags +faststart: once written, ffmpeg moves the moov before the mdat, so a
//     player or a site's upload can start before it has the whole file.
func Args(n int, out string) []string {
	var a ffmpeg.Args
	a.Add("-hide_banner", "-nostdin")
	a.Flag("loglevel", "error")
	a.Add("-nostats")
	a.Flag("progress", "pipe:1")
	a.Flag("stats_period", fmt.Sprint(StatsPeriod.Seconds()))
	a.Add("-copyts")
	for i := range n {
		a.Flag("thread_queue_size", "1024")
		a.Flag("f", "mov")
		a.Flag("i", fmt.Sprintf("pipe:%d", 3+i))
	}
	for i := range n {
		a.Flag("map", fmt.Sprintf("%d:0", i))
	}
	a.Flag("c", "copy")
	a.Flag("movflags", "+faststart")
	a.Flag("f", "mp4")
	a.Add("-y", out)
	return a.Strings()
}

// run runs ffmpeg on tracks into out, feeding each track on its pipe.
func run(ctx context.Context, ffmpegPath string, tracks []*track, out string, progress func(time.Duration)) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var readers, writers []*os.File
	defer func() {
		for _, f := range append(readers, writers...) {
			f.Close()
		}
	}()
	for range tracks {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		readers, writers = append(readers, r), append(writers, w)
	}
	p, err := supervise.Start(ctx, supervise.Spec{
		Path: ffmpegPath, Args: Args(len(tracks), out), PipeStdout: true, ExtraFiles: readers,
	})
	if err != nil {
		return err
	}
	for _, r := range readers {
		r.Close() // the child has them
	}
	readers = nil
	stop := context.AfterFunc(ctx, p.Kill) // a partial file is removed: no need to let ffmpeg finish it
	defer stop()

	var wg sync.WaitGroup
	for i, t := range tracks {
		w := writers[i]
		wg.Go(func() {
			defer w.Close()
			if err := t.feed(w); err != nil {
				cancel(err)
			}
		})
	}
	writers = nil
	_ = ffmpeg.ReadProgress(p.Stdout, func(pr ffmpeg.Progress) { progress(pr.OutTime) })
	res := p.Wait()
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	if res.Err != nil {
		return fmt.Errorf("ffmpeg: %w: %s", res.Err, res.Last())
	}
	return nil
}

// feed writes t to w as one fragmented MP4 stream: the first run's init segment, then
// every segment with its tfdt shifted. A broken pipe (ffmpeg gone) ends it quietly:
// ffmpeg's own error says why.
func (t *track) feed(w io.Writer) error {
	init, err := fileio.ReadFile(t.runs[0].Init)
	if err != nil {
		return err
	}
	if _, err := w.Write(init); err != nil {
		return nil
	}
	for k, r := range t.runs {
		for _, path := range r.Segments {
			data, err := fileio.ReadFile(path)
			if err != nil {
				return err
			}
			if err := shiftTfdt(data, t.shifts[k]); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if _, err := w.Write(data); err != nil {
				return nil
			}
		}
	}
	return nil
}
