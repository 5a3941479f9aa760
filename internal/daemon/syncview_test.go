package daemon

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// An MSE player (hls.js, dash.js, Shaka in a browser) places every sample at its
// decode time (tfdt, then the durations in trun) plus its composition offset, shifted by
// what the manifest says: a DASH Period's start minus the Representation's
// presentationTimeOffset; in HLS, the same shift for every track of a discontinuity.
// Edit lists (elst) it does not apply. So these helpers read the times from the boxes
// themselves, and use ffmpeg only to tell which frame is white and which audio sample
// loud: with -ignore_editlist, and taking none of its timestamps.

// flashesAndBeeps returns, for one Period of the MPD of the job folder dir, the
// presentation times (seconds) of the flashes in its first video Representation and of
// the beeps in its first audio Representation, as an MSE player places them, and the
// same in HLS's terms (media times, which hls.js shifts alike for both tracks).
//
// A flash whose beep would come before the audio's first sample has none; the audio's
// start (DASH, then HLS) is returned too.
func flashesAndBeeps(t *testing.T, dir string, period *mpd.Period) (flashes, beeps, hlsFlashes, hlsBeeps []float64, audioStart, hlsAudioStart float64) {
	t.Helper()
	ps := 0.0
	if period.Start != nil {
		ps = float64(*period.Start) / 1e9
	}
	for _, as := range period.AdaptationSets {
		if len(as.Representations) == 0 {
			continue
		}
		r := as.Representations[0]
		st := r.SegmentTemplate
		times, shift, data := readRun(t, dir, st)
		if as.ContentType == "video" && flashes == nil {
			on := decodedFlashes(t, data, false, len(times))
			for i, lit := range on {
				if lit && i > 0 && !on[i-1] { // where a flash begins (one lit in the first frame began before it: its onset is unseen)
					flashes = append(flashes, times[i]+shift+ps)
					hlsFlashes = append(hlsFlashes, times[i])
				}
			}
		}
		if as.ContentType == "audio" && beeps == nil {
			audioStart, hlsAudioStart = times[0]+shift+ps, times[0]
			for _, b := range decodedBeeps(t, data, false, times[0]) {
				beeps = append(beeps, b+shift+ps)
				hlsBeeps = append(hlsBeeps, b)
			}
		}
	}
	return flashes, beeps, hlsFlashes, hlsBeeps, audioStart, hlsAudioStart
}

// readRun reads the init segment and the segments a SegmentTemplate lists and returns
// the presentation time of every sample in media seconds (tfdt + durations +
// composition offset, sorted: the order of presentation), the shift the template puts
// on them (-presentationTimeOffset), and the init and segments as one file.
func readRun(t *testing.T, dir string, st *mpd.SegmentTemplateType) (times []float64, shift float64, data []byte) {
	t.Helper()
	segs, err := expandTimeline(st, 0)
	if err != nil {
		t.Fatal(err)
	}
	init := readFile(t, filepath.Join(dir, st.Initialization))
	f, err := mp4.DecodeFile(bytes.NewReader(init))
	if err != nil || f.Moov == nil || len(f.Moov.Traks) != 1 {
		t.Fatalf("%s: %v", st.Initialization, err)
	}
	ts := float64(f.Moov.Traks[0].Mdia.Mdhd.Timescale)
	trex, _ := f.Moov.Mvex.GetTrex(f.Moov.Traks[0].Tkhd.TrackID)
	data = slices.Clone(init)
	for _, s := range segs {
		name := strings.ReplaceAll(st.Media, "$Number$", strconv.FormatUint(s.number, 10))
		b := readFile(t, filepath.Join(dir, name))
		data = append(data, b...)
		sf, err := mp4.DecodeFile(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, seg := range sf.Segments {
			for _, frag := range seg.Fragments {
				samples, err := frag.GetFullSamples(trex)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				for _, smp := range samples {
					times = append(times, float64(smp.PresentationTime())/ts)
				}
			}
		}
	}
	slices.Sort(times)
	if st.PresentationTimeOffset != nil {
		shift = -float64(*st.PresentationTimeOffset) / ts
	}
	return times, shift, data
}

// decodeRaw decodes data, a fragmented mp4 of one stream (mkv false) or a Matroska
// file, with ffmpeg, ignoring an mp4's edit list, into raw output of the given ffmpeg
// output options.
func decodeRaw(t *testing.T, data []byte, mkv bool, out ...string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run.mp4")
	args := []string{"-v", "error", "-ignore_editlist", "1", "-i", path}
	if mkv {
		path = filepath.Join(t.TempDir(), "run.mkv")
		args = []string{"-v", "error", "-i", path}
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	args = append(args, out...)
	raw, err := exec.Command("ffmpeg", append(args, "-")...).Output()
	if err != nil {
		t.Fatalf("ffmpeg %v: %v", args, err)
	}
	return raw
}

// decodedFlashes decodes every frame (n of them, in presentation order) and reports
// which are white.
func decodedFlashes(t *testing.T, data []byte, mkv bool, n int) []bool {
	t.Helper()
	raw := decodeRaw(t, data, mkv, "-fps_mode", "passthrough", "-vf", "scale=8:8,format=gray", "-f", "rawvideo")
	if len(raw) != 64*n {
		t.Fatalf("decoded %d frames, the boxes list %d", len(raw)/64, n)
	}
	out := make([]bool, n)
	for i := range out {
		sum := 0
		for _, v := range raw[64*i : 64*i+64] {
			sum += int(v)
		}
		out[i] = sum/64 > 128
	}
	return out
}

// decodedBeeps decodes the audio (48 kHz, whose first sample is at start, media
// seconds) and returns when each beep begins: the first loud sample after a quiet
// half second.
func decodedBeeps(t *testing.T, data []byte, mkv bool, start float64) []float64 {
	t.Helper()
	raw := decodeRaw(t, data, mkv, "-ac", "1", "-ar", "48000", "-f", "s16le")
	var out []float64
	quiet := 0
	for i := 0; i+1 < len(raw); i += 2 {
		v := int16(binary.LittleEndian.Uint16(raw[i:]))
		if math.Abs(float64(v)) < 0.3*32767 {
			quiet++
			continue
		}
		if quiet >= 24000 || len(out) == 0 && quiet == i/2 {
			out = append(out, start+float64(i/2)/48000)
		}
		quiet = 0
	}
	return out
}

// checkAVSync checks that in every Period of the job's MPD, and in its HLS timeline,
// each flash has a beep within one frame (1/fps) of want seconds after it (0: together),
// as an MSE player presents them; it returns the offsets measured (beep minus flash,
// seconds) in DASH.
func checkAVSync(t *testing.T, dir string, fps, want float64) []float64 {
	t.Helper()
	testmedia.ValidateMPD(t, filepath.Join(dir, manifest.MPDName))
	m, err := mpd.ReadFromFile(filepath.Join(dir, manifest.MPDName))
	if err != nil {
		t.Fatal(err)
	}
	var offsets []float64
	for _, p := range m.Periods {
		flashes, beeps, hlsFlashes, hlsBeeps, aStart, hlsAStart := flashesAndBeeps(t, dir, p)
		for _, view := range []struct {
			name           string
			flashes, beeps []float64
			audioStart     float64
		}{{"DASH", flashes, beeps, aStart}, {"HLS", hlsFlashes, hlsBeeps, hlsAStart}} {
			pairs := 0
			for _, f := range view.flashes {
				if f+want < view.audioStart+1/fps {
					continue // its beep is before the audio begins
				}
				i, _ := slices.BinarySearch(view.beeps, f+want)
				best := math.Inf(1)
				for _, k := range []int{i - 1, i} {
					if k >= 0 && k < len(view.beeps) && math.Abs(view.beeps[k]-f-want) < math.Abs(best-want) {
						best = view.beeps[k] - f
					}
				}
				if math.Abs(best-want) > testmedia.SyncPeriod.Seconds()/2 {
					continue // its beep is not in the window (the window's edge)
				}
				pairs++
				if view.name == "DASH" {
					offsets = append(offsets, best)
				}
				if math.Abs(best-want) > 1/fps {
					t.Errorf("period %s, %s: the beep is %+.3f s from the flash at %.3f s; want %+.3f s within one frame (%.3f s)", p.Id, view.name, best, f, want, 1/fps)
				}
			}
			if pairs < 2 {
				t.Errorf("period %s, %s: %d flashes with a beep (flashes %v, beeps %v), want 2 or more", p.Id, view.name, pairs, view.flashes, view.beeps)
			}
		}
	}
	return offsets
}

// sourceOffset records a few seconds of the live source at url as ffmpeg's demuxer
// reads it (into Matroska, which keeps the timestamps as read and has no edit lists)
// and returns the beep minus the flash there: the sync the source gives its readers.
func sourceOffset(t *testing.T, url string) float64 {
	t.Helper()
	path := filepath.Join(t.TempDir(), "source.mkv")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-i", url, "-t", "5", "-c", "copy", path).CombinedOutput(); err != nil {
		t.Fatalf("record %s: %v\n%s", url, err, out)
	}
	pts := func(stream string) []float64 {
		out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", stream, "-show_entries", "packet=pts_time", "-of", "csv=p=0", path).Output()
		if err != nil {
			t.Fatal(err)
		}
		var times []float64
		for _, f := range strings.Fields(string(out)) {
			v, err := strconv.ParseFloat(strings.TrimSuffix(f, ","), 64)
			if err != nil {
				t.Fatal(err)
			}
			times = append(times, v)
		}
		slices.Sort(times)
		return times
	}
	data := readFile(t, path)
	vt := pts("v:0")
	var flashes []float64
	on := decodedFlashes(t, data, true, len(vt))
	for i, lit := range on {
		if lit && i > 0 && !on[i-1] { // one lit in the first frame began unseen
			flashes = append(flashes, vt[i])
		}
	}
	beeps := decodedBeeps(t, data, true, pts("a:0")[0])
	if len(flashes) == 0 || len(beeps) == 0 {
		t.Fatalf("source: flashes %v, beeps %v", flashes, beeps)
	}
	best := math.Inf(1)
	for _, b := range beeps {
		if math.Abs(b-flashes[0]) < math.Abs(best) {
			best = b - flashes[0]
		}
	}
	return best
}
