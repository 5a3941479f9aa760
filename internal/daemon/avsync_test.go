package daemon

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestAVSync: sources whose audio starts half a second after their video, or half a
// second before it, with a flash and a beep made at the same instants, come out with the
// beep within one frame of the flash as an MSE player presents them (checkAVSync: from
// tfdt, trun and the manifests, with no edit list applied), in DASH and in HLS, from a
// file and from live RTMP (also in the run after ffmpeg is killed) and RTSP sources.
//
// Before ffmpeg was told to write the offset into tfdt, the beep came 0.46 s before the
// flash with audio late (file and RTMP), and 0.17 s off the source's own offset from
// RTSP; audio early from a file was in sync already. Before a restarted run was placed
// whole, its DASH Period had audio late by 0.46 s again.
func TestAVSync(t *testing.T) {
	const fps = 30
	for _, tc := range []struct {
		name   string
		kind   string // file, rtmp or rtsp
		offset time.Duration
	}{
		{"file audio late", "file", 500 * time.Millisecond},
		{"file audio early", "file", -500 * time.Millisecond},
		{"rtmp audio late", "rtmp", 500 * time.Millisecond},
		{"rtmp audio early", "rtmp", -500 * time.Millisecond},
		// The RTSP source is joined mid-stream (its relay serves every reader the live
		// stream), so its offset is the one of any such join: audio from the first
		// packet, video from the next keyframe, up to a GOP (1 s) later. (An offset at the
		// publisher cannot be made: ffmpeg's -re paces an encoded input from its first
		// packet, not from its start time, and RTSP carries the streams' relation only in
		// the sender reports, stamped when the relay forwards each packet.) Nor is its
		// content in sync as ffmpeg reads it (the flash comes about 0.7 s before the
		// beep; ffmpeg's RTSP publisher and the relay's sender reports): the output must
		// keep the sync the source gives, measured by recording it (sourceOffset).
		{"rtsp joined", "rtsp", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := startDaemon(t, "")
			var src string
			want := 0.0 // beep minus flash in the source
			switch tc.kind {
			case "file":
				src = "sync.mkv"
				testmedia.WriteSample(t, filepath.Join(d.mediaRoot, src), testmedia.SampleOptions{
					Width: 320, Height: 180, FPS: fps, Duration: 6 * time.Second, Sync: true, AudioOffset: tc.offset,
				})
			case "rtmp":
				src = testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 320, Height: 180, FPS: fps, Sync: true, AudioOffset: tc.offset}).URL
			case "rtsp":
				src = testmedia.StartRTSP(t, testmedia.SourceOptions{Width: 320, Height: 180, FPS: fps, Sync: true, AudioOffset: tc.offset}).URL
				want = sourceOffset(t, src)
				t.Logf("beep minus flash in the source, as ffmpeg reads it: %.3f s", want)
			}
			v := d.create(t, `{"source":"`+src+`","ladder":"test","id":"sync"}`)
			dir := filepath.Join(d.out, v.ID)
			d.waitFor(t, v.ID, 90*time.Second, "6 segments per rendition, or the end", func(v job.View) bool {
				_, err := os.Stat(filepath.Join(dir, manifest.MPDName))
				return err == nil && (v.State == job.Finished || v.State == job.Running && v.Segments >= 6*len(v.Renditions))
			})
			if tc.kind == "rtmp" {
				// ffmpeg killed: the next run, a Period and a discontinuity of its own, must
				// be in sync too.
				before := d.job(t, v.ID)
				if err := syscall.Kill(ffmpegPID(t, dir), syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				d.waitFor(t, v.ID, 60*time.Second, "6 more segments per rendition after a restart", func(v job.View) bool {
					return v.Restarts > before.Restarts && v.State == job.Running && v.Segments >= before.Segments+6*len(v.Renditions)
				})
			}
			offsets := checkAVSync(t, dir, fps, want)
			t.Logf("beep minus flash, as an MSE player presents them: %.3f s", offsets)
		})
	}
}
