package daemon

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestClipMP4 is issue 19's MP4 export: a live recording job, its ffmpeg killed after
// 15 s; a clip across the restart with mp4: true is written in the background as one
// file that ffprobe plays with both tracks, lasting the clip's runs, continuous over
// the restart, whose video packets are the segments' samples one for one (sizes
// equal: not re-encoded), with the moov first. A rung asked for is written; an unknown
// one is a 400 naming those there are; deleting the clip removes the file.
func TestClipMP4(t *testing.T) {
	if testing.Short() {
		t.Skip("the MP4 export test records for about 40 s")
	}
	d := startDaemon(t, "")
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 640, Height: 360, FPS: 25})
	v := d.create(t, `{"source":"`+src.URL+`","ladder":"test","id":"mp4","record":true}`)
	dir := filepath.Join(d.out, v.ID)
	d.waitFor(t, v.ID, 2*time.Minute, "15 s recorded", recorded(15))
	if err := syscall.Kill(ffmpegPID(t, dir), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.waitFor(t, v.ID, 2*time.Minute, "35 s recorded", recorded(35))

	for _, bad := range []struct{ body, want string }{
		{`{"id":"bad","from_s":2,"to_s":30,"mp4":true,"rung":"720p"}`, "one of 360p, 180p"},
		{`{"id":"bad","from_s":2,"to_s":30,"rung":"180p"}`, "mp4"},
	} {
		var e map[string]string
		if code := d.call(t, http.MethodPost, "/v1/jobs/mp4/clips", bad.body, &e); code != http.StatusBadRequest || !strings.Contains(e["error"], bad.want) {
			t.Errorf("POST %s: %d %v, want 400 naming %q", bad.body, code, e, bad.want)
		}
	}

	var c, small job.Clip
	if code := d.call(t, http.MethodPost, "/v1/jobs/mp4/clips", `{"id":"talk","from_s":2,"to_s":30,"mp4":true}`, &c); code != http.StatusCreated {
		t.Fatalf("POST clip: %d", code)
	}
	if c.MP4 == nil || c.MP4.Rung != "360p" || c.MP4.URL != "clips/talk/talk.mp4" {
		t.Fatalf("clip's mp4 %+v: want the top rung, clips/talk/talk.mp4", c.MP4)
	}
	if code := d.call(t, http.MethodPost, "/v1/jobs/mp4/clips", `{"id":"small","from_s":3,"to_s":9,"mp4":true,"rung":"180p"}`, &small); code != http.StatusCreated {
		t.Fatalf("POST clip: %d", code)
	}
	c, small = waitMP4(t, d, "mp4", "talk"), waitMP4(t, d, "mp4", "small")
	t.Logf("clip %s: %.3f s, %d periods; mp4 %+v", c.ID, c.Duration, c.Periods, *c.MP4)
	if c.Periods < 2 {
		t.Errorf("clip talk has %d periods: want it across the restart", c.Periods)
	}
	checkMP4(t, dir, c)
	checkMP4(t, dir, small)

	if code := d.call(t, http.MethodDelete, "/v1/jobs/mp4/clips/talk", "", &c); code != http.StatusOK {
		t.Errorf("DELETE clip: %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "clips", "talk", "talk.mp4")); !os.IsNotExist(err) {
		t.Errorf("deleted clip's mp4: %v", err)
	}
}

// waitMP4 polls clip id of job until its MP4 file is no longer being written, and
// fails unless it was written.
func waitMP4(t *testing.T, d *daemon, jobID, id string) job.Clip {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var list struct{ Clips []job.Clip }
		d.call(t, http.MethodGet, "/v1/jobs/"+jobID+"/clips", "", &list)
		k := slices.IndexFunc(list.Clips, func(c job.Clip) bool { return c.ID == id })
		switch {
		case k < 0 || list.Clips[k].MP4 == nil:
			t.Fatalf("clip %s: %+v, want one with an mp4", id, list.Clips)
		case list.Clips[k].MP4.State == "done":
			return list.Clips[k]
		case list.Clips[k].MP4.State != "writing":
			t.Fatalf("clip %s's mp4: %+v", id, *list.Clips[k].MP4)
		case time.Now().After(deadline):
			t.Fatalf("clip %s's mp4 still writing after 2 minutes: %+v", id, *list.Clips[k].MP4)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkMP4 checks clip c's MP4 file against the segments its own playlist of the rung
// lists: both tracks, the moov first, every video sample copied (same sizes, in
// order), the duration of its runs, and no gap in the video over a restart.
func checkMP4(t *testing.T, dir string, c job.Clip) {
	t.Helper()
	out := filepath.Join(dir, c.MP4.URL)
	st, err := os.Stat(out)
	if err != nil || st.Size() != c.MP4.Bytes {
		t.Fatalf("%s: %v, %v: want %d bytes", out, st, err, c.MP4.Bytes)
	}
	data := readFile(t, out)
	if moov, mdat := bytes.Index(data, []byte("moov")), bytes.Index(data, []byte("mdat")); moov < 0 || moov > mdat {
		t.Errorf("%s: moov at %d, mdat at %d: want faststart", out, moov, mdat)
	}
	pr := testmedia.Probe(t, out)
	var kinds []string
	for _, s := range pr.Streams {
		kinds = append(kinds, s.CodecType+"/"+s.CodecName)
	}
	if !slices.Equal(kinds, []string{"video/h264", "audio/aac"}) {
		t.Fatalf("%s: streams %v, want video/h264 and audio/aac", out, kinds)
	}
	var want []int
	var runs float64
	playlist := playlistRuns(t, filepath.Join(dir, "clips", c.ID, c.MP4.Rung, manifest.MediaName))
	for _, r := range playlist {
		sizes, times, end := testmedia.Samples(t, r[0], r[1:])
		want = append(want, sizes...)
		runs += end - times[0]
	}
	sizes, times := pr.Stream(0)
	if !slices.Equal(sizes, want) {
		t.Errorf("%s: %d video packets, %d samples in the clip's segments, or their sizes differ: re-encoded?", out, len(sizes), len(want))
	}
	// One file: the video goes on frame after frame, except where a run follows
	// another: it may wait there for the audio of the run before, which ends up to a
	// segment after its video (export's package comment).
	var joins int
	for i := 1; i < len(times); i++ {
		gap := times[i] - times[i-1]
		if gap > 0.5 {
			joins++
		}
		if gap <= 0 || gap > testSegment.Seconds()+0.1 || joins >= len(playlist) {
			t.Errorf("%s: video packet %d at %.3f s after %.3f s (%d runs): want one continuous file", out, i, times[i], times[i-1], len(playlist))
			break
		}
	}
	dur, slack := pr.Duration(), float64(len(playlist))*testSegment.Seconds()
	t.Logf("%s: %d bytes, %.3f s (video of its %d runs %.3f s, total_s %.3f), %d video packets", c.MP4.URL, st.Size(), dur, len(playlist), runs, c.MP4.TotalS, len(sizes))
	if dur < runs || dur > runs+slack || dur < c.MP4.TotalS-0.1 || dur > c.MP4.TotalS+0.1 {
		t.Errorf("%s lasts %.3f s: want its runs' video %.3f s to 1 segment more per run, and total_s %.3f", out, dur, runs, c.MP4.TotalS)
	}
}

// playlistRuns reads an HLS media playlist: per EXT-X-MAP, its init segment then the
// media segments after it, as paths.
func playlistRuns(t *testing.T, path string) [][]string {
	t.Helper()
	var runs [][]string
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, path)))
	for sc.Scan() {
		line := sc.Text()
		if uri, ok := strings.CutPrefix(line, `#EXT-X-MAP:URI="`); ok {
			runs = append(runs, []string{filepath.Join(filepath.Dir(path), strings.TrimSuffix(uri, `"`))})
		} else if line != "" && !strings.HasPrefix(line, "#") && len(runs) > 0 {
			runs[len(runs)-1] = append(runs[len(runs)-1], filepath.Join(filepath.Dir(path), line))
		}
	}
	if len(runs) == 0 {
		t.Fatalf("%s lists no init segment", path)
	}
	return runs
}
