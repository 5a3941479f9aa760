package testmedia

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"
)

// SampleOptions describes a file for WriteSample. The zero value asks for
// two seconds of 320x180 at 30 fps with audio and video.
type SampleOptions struct {
	// Width and Height of the picture; 320x180 when zero. Both must be even.
	Width, Height int
	// FPS is the frame rate; 30 when zero. The GOP is one second long.
	FPS int
	// Duration of the file; two seconds when zero.
	Duration time.Duration
	// Audio and Video select the streams. When both are false (the zero
	// value) the file gets both; set one to get only that one.
	Audio, Video bool
	// Noise adds temporal and uniform noise (noise=alls=20:allf=t+u), so the
	// video compresses like real camera content rather than like a test card.
	Noise bool
	// Languages gives the file one audio track per entry, each tagged with its entry as
	// the stream's language ("eng", "fra", as MP4 and Matroska hold them; "" leaves a
	// track untagged). Track k is a sine of 440+220k Hz, 20k dB quieter than the first,
	// as with SourceOptions.AudioTracks. Empty: one untagged track.
	Languages []string
	// Sync makes the content a flash and a beep once a second (see BeepLength) with the
	// audio starting AudioOffset after the video (before it when negative), written as
	// Matroska, which keeps each stream's start as it is. Both streams are required.
	Sync        bool
	AudioOffset time.Duration
}

// withDefaults applies the zero-value rules.
func (o SampleOptions) withDefaults() SampleOptions {
	if o.Width == 0 && o.Height == 0 {
		o.Width, o.Height = 320, 180
	}
	if o.FPS == 0 {
		o.FPS = 30
	}
	if o.Duration == 0 {
		o.Duration = 2 * time.Second
	}
	if !o.Audio && !o.Video {
		o.Audio, o.Video = true, true
	}
	return o
}

func (o SampleOptions) validate() error {
	switch {
	case o.Width <= 0 || o.Height <= 0 || o.Width%2 != 0 || o.Height%2 != 0:
		return fmt.Errorf("size %dx%d: want positive even width and height", o.Width, o.Height)
	case o.FPS < 0:
		return fmt.Errorf("fps %d: want positive", o.FPS)
	case o.Duration < 0:
		return fmt.Errorf("duration %v: want positive", o.Duration)
	case len(o.Languages) > maxAudioTracks:
		return fmt.Errorf("%d audio tracks: want at most %d", len(o.Languages), maxAudioTracks)
	case len(o.Languages) > 0 && !o.Audio:
		return fmt.Errorf("languages %q without audio", o.Languages)
	case o.Sync && len(o.Languages) > 1:
		return fmt.Errorf("sync content has one audio track, not %d", len(o.Languages))
	}
	return nil
}

// sampleArgs is ffmpeg's argv (without "ffmpeg") for WriteSample.
func sampleArgs(path string, o SampleOptions) []string {
	secs := strconv.FormatFloat(o.Duration.Seconds(), 'f', -1, 64)
	args := []string{"-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y"}
	if o.Sync {
		args = append(args, syncInputs(nil, o.Width, o.Height, o.FPS, o.AudioOffset, secs)...)
		return append(args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", strconv.Itoa(o.FPS),
			"-c:a", "aac", "-b:a", "64k", "-ac", "2", "-f", "matroska", path)
	}
	if o.Video {
		args = append(args, "-f", "lavfi", "-i",
			fmt.Sprintf("testsrc2=size=%dx%d:rate=%d:duration=%s", o.Width, o.Height, o.FPS, secs))
	}
	tracks := max(1, len(o.Languages))
	if o.Audio {
		for _, in := range audioInputs(tracks, secs) {
			args = append(args, "-f", "lavfi", "-i", in)
		}
	}
	if o.Audio && tracks > 1 {
		// Every track, not the one ffmpeg would pick.
		if o.Video {
			args = append(args, "-map", "0:v")
		}
		for k := range tracks {
			args = append(args, "-map", strconv.Itoa(k+btoi(o.Video))+":a")
		}
	}
	if o.Video {
		if o.Noise {
			args = append(args, "-vf", "noise=alls=20:allf=t+u")
		}
		args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
			"-g", strconv.Itoa(o.FPS))
	}
	if o.Audio {
		args = append(args, "-c:a", "aac", "-b:a", "64k", "-ac", "2")
		for k, lang := range o.Languages {
			if lang != "" {
				args = append(args, "-metadata:s:a:"+strconv.Itoa(k), "language="+lang)
			}
		}
	}
	return append(args, "-f", "mp4", path)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// WriteSample writes an MP4 file at path (whatever its extension) from
// ffmpeg's lavfi testsrc2 and sine sources, encoded with libx264 (ultrafast)
// and AAC. It fails the test when ffmpeg fails, and skips it (or fails it
// under CI) when ffmpeg is missing.
func WriteSample(t testing.TB, path string, opts SampleOptions) {
	t.Helper()
	RequireFFmpeg(t)
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		t.Fatalf("testmedia: sample options: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := groupCommand(ctx, "ffmpeg", sampleArgs(path, opts)...)
	var stderr tail
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("testmedia: ffmpeg writing %s: %v\n%s", path, err, stderr.String())
	}
}
