package gpu

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/transcoderd/transcoderd/internal/encoder"
	"github.com/transcoderd/transcoderd/internal/ladder"
)

// A trial encode: one second at 30 fps, keyframes asked at frames 0 and 15.
const (
	trialFPS     = 30
	trialSeconds = 1.0
	trialSegment = 0.5
	trialPreset  = "veryfast"
)

// decodeTrial tries decoding an H.264 clip on the device and scaling there, for
// an x264 rung and for the device's working encoder that reads the same frames.
// Jobs decode on the GPU only what this proved.
func (p Prober) decodeTrial(ctx context.Context, d *Device, b Build, tmp string) {
	frames := decodeFrames(d.Vendor)
	if tmp == "" || ctx.Err() != nil || !canDecode(d, frames, b) {
		return
	}
	clip, err := p.clip(ctx, tmp)
	if err != nil {
		d.Decode = &Trial{Error: err.Error(), Kind: kindOther}
		return
	}
	hw := d.hardware(frames)
	hw.Decode = true
	hw.Scaler = scaler(b, frames)
	var rungs []ladder.PlannedVideo
	for _, r := range d.Encoders {
		if r.Working && framesOf(r.Backend) == frames {
			rungs = append(rungs, trialRung(r.Backend, "trial", p.Width, p.Height))
			break
		}
	}
	rungs = append(rungs, trialRung(encoder.X264, "trial_x264", p.Width/4*2, p.Height/4*2))
	t := p.trial(ctx, hw, rungs, []string{"-i", clip}, tmp)
	d.Decode = &t
}

// canDecode reports whether device d and build b can try decoding onto frames
// of type frames, scaling there and downloading for x264.
func canDecode(d *Device, frames string, b Build) bool {
	be, ok := readerOf(frames)
	if !ok {
		return false
	}
	why, _ := unreachable(d, be)
	x264, _ := encoder.Resolve(encoder.X264)
	return why == "" && missing(be, b) == "" && slices.Contains(b.Encoders, x264.FFmpeg) && slices.Contains(b.Filters, "hwdownload")
}

// clip writes, once, a one-second H.264 clip at the trial size with libx264.
func (p Prober) clip(ctx context.Context, tmp string) (string, error) {
	path := filepath.Join(tmp, "clip.mp4")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	_, stderr, err := run(ctx, p.FFmpeg, nil, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", testSource(p.Width, p.Height),
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "15", path)
	if err != nil {
		line, _, _ := reason(stderr)
		return "", fmt.Errorf("make the decode trial clip: %w: %s", err, line)
	}
	return path, nil
}

func testSource(w, h int) string {
	return fmt.Sprintf("testsrc2=size=%dx%d:rate=%d:duration=%s", w, h, trialFPS, strconv.FormatFloat(trialSeconds, 'f', -1, 64))
}

func lavfiInput(w, h int) []string { return []string{"-f", "lavfi", "-i", testSource(w, h)} }

func trialRung(backend, name string, w, h int) ladder.PlannedVideo {
	// A ladder-like bitrate for the size: about 0.1 bit per pixel per frame.
	br := int64(w*h*trialFPS/10/1000) * 1000
	return ladder.PlannedVideo{Name: name, Width: w, Height: h, Bitrate: br, MaxRate: br, BufSize: 2 * br, Profile: "main", Encoder: backend}
}

func trialGOP() int { return int(math.Round(trialFPS * trialSegment)) }

// trialArgs is the argv of a trial: the job's own device options, filter graph
// and encoder arguments, with each rung written as framecrc to a file in tmp.
func trialArgs(hw encoder.Hardware, rungs []ladder.PlannedVideo, input []string, outs []string) ([]string, error) {
	graph, outputs, err := encoder.Rungs(strconv.Itoa(trialFPS), rungs, hw, trialPreset, trialGOP(), trialSegment)
	if err != nil {
		return nil, err
	}
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "warning"}
	args = append(args, hw.InputArgs()...)
	args = append(args, input...)
	args = append(args, "-filter_complex", graph)
	for i, o := range outputs {
		args = append(args, o...)
		args = append(args, "-an", "-f", outs[i*2], "-y", outs[i*2+1])
	}
	return args, nil
}

// trial runs one trial encode and checks that frames came out of every output
// and that keyframes landed on the segment boundaries asked for.
func (p Prober) trial(ctx context.Context, hw encoder.Hardware, rungs []ladder.PlannedVideo, input []string, tmp string) Trial {
	var outs, files []string
	for i := range rungs {
		f := filepath.Join(tmp, fmt.Sprintf("trial-%d.crc", i))
		_ = os.Remove(f)
		outs = append(outs, "framecrc", f)
		files = append(files, f)
	}
	args, err := trialArgs(hw, rungs, input, outs)
	if err != nil {
		return Trial{Error: err.Error(), Kind: kindOther}
	}
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	began := time.Now()
	_, stderr, cpu, err := runTimed(ctx, p.FFmpeg, hw.Env(), args...)
	t := Trial{Args: append([]string{p.FFmpeg}, args...), TookMS: time.Since(began).Milliseconds(), CPUMS: cpu.Milliseconds()}
	if ctx.Err() != nil {
		t.Error, t.Kind = fmt.Sprintf("trial encode did not finish in %s", p.Timeout), kindTimeout
		return t
	}
	if err != nil {
		line, kind, _ := reason(stderr)
		if line == "" {
			line = err.Error()
		}
		t.Error, t.Kind = line, kind
		return t
	}
	for i, f := range files {
		frames, keys, err := readFrameCRC(f)
		if i == 0 {
			t.Frames, t.Keyframes = frames, keys
		}
		if t.Error, t.Kind = checkOutput(rungs[i].Encoder, frames, keys, err); t.Error != "" {
			return t
		}
	}
	t.OK = true
	return t
}

// checkOutput says what is wrong with one trial output of backend, read by
// readFrameCRC: too few frames, or keyframes missing on segment boundaries.
func checkOutput(backend string, frames int, keys []int, err error) (msg, kind string) {
	want := int(math.Round(trialFPS * trialSeconds))
	switch {
	case err != nil:
		return err.Error(), kindNoFrames
	case frames < want:
		return fmt.Sprintf("%s: %d frames came out of %d", backend, frames, want), kindNoFrames
	}
	var missed []string
	for k := 0; k < want; k += trialGOP() {
		if !slices.Contains(keys, k) {
			missed = append(missed, strconv.Itoa(k))
		}
	}
	if len(missed) > 0 {
		return fmt.Sprintf("%s ignored forced keyframes: no keyframe at frame %s (keyframes at %s)",
			backend, strings.Join(missed, ", "), joinInts(keys)), kindKeyframes
	}
	return "", ""
}

// readFrameCRC reads a framecrc file: per packet "stream, dts, pts, duration,
// size, crc" and ", F=0x0" when the packet is not a keyframe. It returns the
// number of video packets and the frame numbers of the keyframes.
func readFrameCRC(path string) (frames int, keys []int, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, fmt.Errorf("no output: %w", err)
	}
	tbNum, tbDen := 1, trialFPS
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "#tb 0: "); ok {
			n, d, ok := strings.Cut(strings.TrimSpace(rest), "/")
			a, err1 := strconv.Atoi(n)
			b, err2 := strconv.Atoi(d)
			if !ok || err1 != nil || err2 != nil || a <= 0 || b <= 0 {
				return 0, nil, fmt.Errorf("framecrc: bad time base %q", line)
			}
			tbNum, tbDen = a, b
			continue
		}
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 6 || strings.TrimSpace(f[0]) != "0" {
			continue
		}
		pts, err := strconv.ParseInt(strings.TrimSpace(f[2]), 10, 64)
		if err != nil {
			return 0, nil, fmt.Errorf("framecrc: bad pts in %q", line)
		}
		frames++
		key := true
		for _, extra := range f[6:] {
			if strings.HasPrefix(strings.TrimSpace(extra), "F=") {
				key = false
			}
		}
		if key {
			keys = append(keys, int(math.Round(float64(pts)*float64(tbNum)/float64(tbDen)*trialFPS)))
		}
	}
	sort.Ints(keys)
	return frames, keys, sc.Err()
}

func joinInts(v []int) string {
	if len(v) == 0 {
		return "none"
	}
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// cpuPerMpx is the CPU the trial took per megapixel per second of rung v, its
// first output: cores per Mpx/s. 0 when it measured no CPU or no frame.
func (t Trial) cpuPerMpx(v ladder.PlannedVideo) float64 {
	mpx := float64(v.Width*v.Height*t.Frames) / 1e6
	if t.CPUMS <= 0 || mpx <= 0 {
		return 0
	}
	return float64(t.CPUMS) / 1e3 / mpx
}
