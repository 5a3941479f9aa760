package testmedia

import (
	"context"
	"fmt"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestClock burns the clock into two seconds of the live source, encodes them as the
// smallest rung of a ladder would (320x180, x264 at 200k), and reads the clock back off
// decoded frames with ReadClock and with web/test/clock.js: every frame reads, the two
// readers agree, each value lies between ffmpeg's start and end, and the values go on
// by about one frame (33 ms) a frame.
func TestClock(t *testing.T) {
	RequireFFmpeg(t)
	dir := t.TempDir()
	const w, h, fps, frames = 320, 180, 30, 60
	o := SourceOptions{Width: 640, Height: 360, FPS: fps, Clock: true}
	args := slices.Concat(liveArgs(o), []string{"-t", "2", "-s", fmt.Sprintf("%dx%d", w, h), "-b:v", "200k", "-maxrate", "200k", "-bufsize", "400k", "-y", filepath.Join(dir, "clip.mp4")})
	began := time.Now()
	run(t, "ffmpeg", args...)
	ended := time.Now()
	run(t, "ffmpeg", "-loglevel", "error", "-i", filepath.Join(dir, "clip.mp4"), "-f", "image2", "-pix_fmt", "rgba", "-c:v", "rawvideo", filepath.Join(dir, "f%03d.rgba"))

	files, _ := filepath.Glob(filepath.Join(dir, "f*.rgba"))
	if len(files) < frames-1 {
		t.Fatalf("%d frames decoded, want %d", len(files), frames)
	}
	var values []int
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		img := &image.RGBA{Pix: data, Stride: 4 * w, Rect: image.Rect(0, 0, w, h)}
		v, ok := ReadClock(img)
		if !ok {
			t.Fatalf("%s: the clock does not read clearly", filepath.Base(f))
		}
		if lat := ClockLatency(v, ended); lat > ended.Sub(began)+ClockUnit {
			t.Errorf("%s: clock %d is %v before ffmpeg ended, but ffmpeg ran only %v", filepath.Base(f), v, lat, ended.Sub(began))
		}
		values = append(values, v)
	}
	// -re paces the frames; on a busy machine it lets a late one through with the next.
	for i := 1; i < len(values); i++ {
		step := time.Duration((values[i]-values[i-1]+clockWrap)%clockWrap) * ClockUnit
		if step > 250*time.Millisecond {
			t.Errorf("frame %d: clock stepped %v from the frame before, want about %v", i+1, step, time.Second/fps)
		}
	}
	span := time.Duration((values[len(values)-1]-values[0]+clockWrap)%clockWrap) * ClockUnit
	if want := time.Duration(len(values)-1) * time.Second / fps; span < want-300*time.Millisecond || span > want+300*time.Millisecond {
		t.Errorf("the clock went on by %v over %d frames, want about %v", span, len(values), want)
	}
	t.Logf("%d frames read: %v .. %v before ffmpeg ended", len(values), ClockLatency(values[0], ended), ClockLatency(values[len(values)-1], ended))
	checkClockJS(t, w, h, files, values)
}

// checkClockJS reads the same frames with web/test/clock.js in node and wants the
// values ReadClock read.
func checkClockJS(t *testing.T, w, h int, files []string, want []int) {
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is needed to check web/test/clock.js (CI is set, so this is a failure)")
		}
		t.Skip("node is missing: web/test/clock.js not checked")
	}
	script, err := filepath.Abs("../../web/test/clockcheck.mjs")
	if err != nil {
		t.Fatal(err)
	}
	out := run(t, "node", append([]string{script, strconv.Itoa(w), strconv.Itoa(h)}, files...)...)
	got := strings.Fields(out)
	if len(got) != len(want) {
		t.Fatalf("clock.js read %d frames, want %d: %s", len(got), len(want), out)
	}
	for i, g := range got {
		if g != strconv.Itoa(want[i]) {
			t.Errorf("frame %d: clock.js read %s, ReadClock %d", i+1, g, want[i])
		}
	}
}

// run runs a command for the test and returns its standard output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stderr tail
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, stderr.String())
	}
	return string(out)
}
