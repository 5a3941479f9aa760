package job

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/fileio"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/publish"
	"github.com/transcoderd/transcoderd/internal/store"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestOutageNeverServesDeleted runs a live job's publish path (index, render, prune: the
// real files) on a fake clock through a 2-minute outage with a 60 s window: ffmpeg writes
// a run of 70 s, nothing for 2 minutes, then a new run whose audio segments close before
// its video ones, as behind a network source. After every publish, every segment that a
// manifest on disk names must be on disk; the old run's segments still go, a grace
// period after the manifests stopped naming them.
func TestOutageNeverServesDeleted(t *testing.T) {
	src := readySegments(t, 70)
	dir := t.TempDir()
	start := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	now := start
	clock := func() time.Time { return now }
	r := publishRunner(t, dir, clock)
	feeds := feedTracks(r, src, dir)
	run := func(first uint64, segments int) {
		next := r.idx.beginAttempt()
		for name, f := range feeds {
			f.begin(t, r.idx.run, next[name])
		}
		for k := range segments {
			now = now.Add(time.Second)
			for _, name := range []string{"a", "v"} { // audio closes first
				feeds[name].emit(t, k)
				r.refresh()
				checkServed(t, dir, fmt.Sprintf("segment %d of the run from %d, %s", k, first, name))
			}
		}
	}
	run(0, 70)
	oldRun := r.idx.run
	now = now.Add(2 * time.Minute) // the outage
	run(70, 45)
	if _, err := os.Stat(filepath.Join(dir, "v", manifest.SegmentName(oldRun, 69))); !os.IsNotExist(err) {
		t.Errorf("the old run's last segment is still on disk 45 s after the outage: %v", err)
	}
	testmedia.ValidateMPD(t, filepath.Join(dir, manifest.MPDName))
}

// readySegments has ffmpeg write seconds of 1 s segments of a video track ("v") and an
// audio track ("a") into a folder each, and returns their parent.
func readySegments(t *testing.T, seconds int) string {
	t.Helper()
	testmedia.RequireFFmpeg(t)
	src := t.TempDir()
	for _, tr := range []struct{ name, lavfi, codec string }{
		{"v", fmt.Sprintf("testsrc2=size=160x90:rate=25:duration=%d", seconds), "libx264"},
		{"a", fmt.Sprintf("sine=sample_rate=48000:duration=%d", seconds), "aac"},
	} {
		dir := filepath.Join(src, tr.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", tr.lavfi,
			"-c", tr.codec, "-preset", "ultrafast", "-g", "25", "-sc_threshold", "0",
			"-f", "hls", "-hls_time", "1", "-hls_segment_type", "fmp4", "-hls_list_size", "0",
			"-hls_fmp4_init_filename", manifest.InitName(0), "-hls_segment_filename", filepath.Join(dir, ffmpeg.SegmentPattern(0)),
			filepath.Join(dir, "all.m3u8")).CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, out)
		}
	}
	return src
}

// feedTracks adds the tracks "v" and "a" to r's index, and returns a feed of each from
// the segments readySegments wrote in src.
func feedTracks(r *runner, src, dir string) map[string]*feed {
	feeds := map[string]*feed{}
	for _, name := range []string{"v", "a"} {
		kind := manifest.Video
		if name == "a" {
			kind = manifest.Audio
		}
		f := &feed{src: filepath.Join(src, name), dir: filepath.Join(dir, name), playlist: filepath.Join(dir, ffmpeg.PrivatePlaylist(name)),
			init: filepath.Join(dir, ffmpeg.PrivateInit(name))}
		r.idx.addTrack(name, kind, f.dir, f.playlist, 100_000)
		feeds[name] = f
	}
	return feeds
}

// publishRunner is a runner of a live job in dir whose index has no tracks yet; its
// clock is clock.
func publishRunner(t *testing.T, dir string, clock func() time.Time) *runner {
	t.Helper()
	st := store.NewMemory()
	j := &Job{id: "live", dir: dir, log: zerolog.Nop(), now: clock, store: st, done: make(chan struct{}), view: View{State: Starting}}
	d := deps{store: st, fs: fileio.For(dir), observer: noObserver{}, publish: publish.FS{}, now: clock}
	r := &runner{j: j, deps: d, log: zerolog.Nop(), live: true, pub: publish.FS{}.Job("live", dir, zerolog.Nop()), written: map[string][]byte{}}
	r.idx = newIndex(true, time.Second, time.Minute, clock)
	r.idx.fs = d.fs
	if err := os.MkdirAll(filepath.Join(dir, ffmpeg.PrivateDir), 0o755); err != nil {
		t.Fatal(err)
	}
	return r
}

// feed plays ffmpeg for one track: it copies ready-made segments into the track's folder
// under the numbers ffmpeg would give them, and rewrites its playlist after each.
type feed struct {
	src, dir, playlist string
	init               string   // where ffmpeg writes the run's init segment
	run                uint64   // the run's number (index.run)
	next               uint64   // the number of the next segment
	listed             []string // ffmpeg's playlist: the last 10 segments
}

func (f *feed) begin(t *testing.T, run, next uint64) {
	t.Helper()
	f.run, f.next, f.listed = run, next, nil
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyTo(t, filepath.Join(f.src, manifest.InitName(0)), f.init)
	_ = os.Remove(f.playlist) // a new run's ffmpeg starts without one (clearPrivate)
}

// truncate cuts the newest segment to half its size, as a full disk leaves it.
func (f *feed) truncate(t *testing.T) {
	t.Helper()
	path := filepath.Join(f.dir, manifest.SegmentName(f.run, f.next-1))
	st, err := os.Stat(path)
	if err == nil {
		err = os.Truncate(path, st.Size()/2)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// emit writes the k-th segment of the ready-made run as the track's next segment.
func (f *feed) emit(t *testing.T, k int) {
	t.Helper()
	name := manifest.SegmentName(f.run, f.next)
	copyTo(t, filepath.Join(f.src, manifest.SegmentName(0, uint64(k))), filepath.Join(f.dir, name))
	f.next++
	f.listed = append(f.listed, name)
	if len(f.listed) > ffmpeg.PlaylistSize {
		f.listed = f.listed[1:]
	}
	pl := "#EXTM3U\n#EXT-X-TARGETDURATION:1\n"
	for _, n := range f.listed {
		pl += "#EXTINF:1.0,\n" + filepath.Join("..", filepath.Base(f.dir), n) + "\n"
	}
	if err := (fileio.FS{}).WriteAtomic(f.playlist, []byte(pl)); err != nil {
		t.Fatal(err)
	}
}

func copyTo(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err == nil {
		err = os.WriteFile(to, data, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// checkServed fails the test for every segment that a manifest in dir (each media
// playlist, the MPD) names and that is not on disk.
func checkServed(t *testing.T, dir, when string) {
	t.Helper()
	playlists, _ := filepath.Glob(filepath.Join(dir, "*", manifest.MediaName))
	for _, pl := range playlists {
		for _, line := range strings.Split(string(readFile(t, pl)), "\n") {
			if line != "" && !strings.HasPrefix(line, "#") {
				if _, err := os.Stat(filepath.Join(filepath.Dir(pl), line)); err != nil {
					t.Fatalf("after %s: %s names a segment not on disk: %v", when, pl, err)
				}
			}
		}
	}
	doc, err := mpd.ReadFromFile(filepath.Join(dir, manifest.MPDName))
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range doc.Periods {
		for _, as := range p.AdaptationSets {
			for _, rep := range as.Representations {
				st := rep.SegmentTemplate
				n := *st.StartNumber
				for _, s := range st.SegmentTimeline.S {
					for range 1 + s.R {
						name := strings.ReplaceAll(st.Media, "$Number$", fmt.Sprint(n))
						if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
							t.Fatalf("after %s: the MPD names a segment not on disk: %v", when, err)
						}
						n++
					}
				}
			}
		}
	}
}
