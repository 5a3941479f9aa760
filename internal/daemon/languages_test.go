package daemon

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/hls-m3u8/m3u8"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// languagesLadder takes every audio track of the source at two bitrates: two HLS
// rendition groups of the same languages.
const languagesLadder = `segment_duration: 1s
video:
  preset: ultrafast
  renditions:
    - {name: 360p, height: 360, bitrate: 600k}
    - {name: 180p, height: 180, bitrate: 200k}
audio:
  - {name: aac, bitrate: 96k, tracks: all}
  - {name: lo, bitrate: 32k, channels: 1, tracks: all}
audio_only: true
`

// camLadder picks the two audio tracks of a live source that tags neither and names
// their languages ("fra" is written "fr"); its third entry names a track the source lacks.
const camLadder = `segment_duration: 1s
window: 30s
video:
  preset: ultrafast
  renditions:
    - {name: 180p, height: 180, bitrate: 200k}
audio:
  - {name: en, bitrate: 64k, track: 0, language: en}
  - {name: fr, bitrate: 64k, track: 1, language: fra}
  - {name: de, bitrate: 64k, track: 2, language: de}
`

// TestLanguagesVOD transcodes a file with an English and a French audio track (tones
// 20 dB apart) on a ladder with tracks: all at two bitrates, and checks the outputs:
// four audio renditions, each carrying its own source track; HLS groups "aac" and "lo"
// of an English and a French rendition each, with LANGUAGE and NAME; in DASH one
// AdaptationSet per language holding both bitrates.
func TestLanguagesVOD(t *testing.T) {
	profiles := t.TempDir()
	writeFile(t, filepath.Join(profiles, "langs.yaml"), languagesLadder)
	d := startDaemon(t, profiles)
	testmedia.WriteSample(t, filepath.Join(d.mediaRoot, "film.mp4"), testmedia.SampleOptions{
		Width: 640, Height: 360, FPS: 30, Duration: 6 * time.Second, Languages: []string{"eng", "fra"},
	})
	v := d.create(t, `{"source":"film.mp4","ladder":"langs","id":"film"}`)
	v = d.waitFor(t, v.ID, 3*time.Minute, "finish", func(v job.View) bool { return v.State == job.Finished })

	if v.Input == nil || len(v.Input.AudioTracks) != 2 || v.Input.AudioTracks[0].Language != "en" || v.Input.AudioTracks[1].Language != "fr" {
		t.Errorf("the probe found %+v, want audio tracks en and fr", v.Input)
	}
	want := map[string]string{"aac_0": "en", "aac_1": "fr", "lo_0": "en", "lo_1": "fr"}
	checkAudioRenditions(t, v, want)

	dir := filepath.Join(d.out, v.ID)
	checkOutputs(t, dir, v)
	checkLanguages(t, dir, map[string][]string{"aac": {"aac_0", "aac_1"}, "lo": {"lo_0", "lo_1"}},
		map[string][]string{"en": {"aac_0", "lo_0"}, "fr": {"aac_1", "lo_1"}})
	checkTrackLoudness(t, dir, [][2]string{{"aac_0", "aac_1"}, {"lo_0", "lo_1"}})
}

// TestLanguagesLiveRTSP pulls a live RTSP source with two audio tracks. RTSP carries no
// language tags, so the ladder picks each track and names its language; a third entry
// names a track the source lacks and is dropped, with an event that says why, while
// the job runs on with the other two.
func TestLanguagesLiveRTSP(t *testing.T) {
	profiles := t.TempDir()
	writeFile(t, filepath.Join(profiles, "cam.yaml"), camLadder)
	d := startDaemon(t, profiles)
	src := testmedia.StartRTSP(t, testmedia.SourceOptions{Width: 320, Height: 180, FPS: 25, AudioTracks: 2})
	v := d.create(t, `{"source":"`+src.URL+`","ladder":"cam","id":"cam"}`)
	dir := filepath.Join(d.out, v.ID)
	v = d.waitFor(t, v.ID, 90*time.Second, "4 segments per rendition", func(v job.View) bool {
		_, err := os.Stat(filepath.Join(dir, manifest.MPDName))
		return v.State == job.Running && err == nil && v.Segments >= 4*len(v.Renditions)
	})
	if v.Input == nil || len(v.Input.AudioTracks) != 2 {
		t.Errorf("the probe found %+v, want two audio tracks", v.Input)
	}
	checkAudioRenditions(t, v, map[string]string{"en": "en", "fr": "fr"})
	if !slices.Equal(v.Dropped, []string{"de"}) {
		t.Errorf("dropped %q, want [de]", v.Dropped)
	}
	var ev struct{ Events []job.Event }
	d.call(t, http.MethodGet, "/v1/jobs/cam/events", "", &ev)
	if !slices.ContainsFunc(ev.Events, func(e job.Event) bool {
		return e.Type == "dropped" && strings.Contains(e.Message, "audio de: the source has no audio track 2 (it has 2 audio tracks)")
	}) {
		t.Errorf("no dropped event saying why de was dropped: %+v", ev.Events)
	}

	checkOutputs(t, dir, v)
	checkLanguages(t, dir, map[string][]string{"audio": {"en", "fr"}}, map[string][]string{"en": {"en"}, "fr": {"fr"}})
	checkTrackLoudness(t, dir, [][2]string{{"en", "fr"}})

	if code := d.call(t, http.MethodDelete, "/v1/jobs/cam", "", &v); code != http.StatusOK || v.State != job.Finished {
		t.Fatalf("DELETE: %d, %s", code, v.State)
	}
	checkOutputs(t, dir, v)
	checkLanguages(t, dir, map[string][]string{"audio": {"en", "fr"}}, map[string][]string{"en": {"en"}, "fr": {"fr"}})
}

// checkAudioRenditions checks the job's audio renditions and their languages.
func checkAudioRenditions(t *testing.T, v job.View, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, r := range v.Renditions {
		if r.Kind == "audio" {
			got[r.Name] = r.Language
		}
	}
	if len(got) != len(want) {
		t.Errorf("audio renditions %v, want %v", got, want)
	}
	for name, lang := range want {
		if got[name] != lang {
			t.Errorf("audio rendition %s: language %q, want %q (all: %v)", name, got[name], lang, got)
		}
	}
}

// checkLanguages checks the languages the manifests of a job folder declare: in the
// master playlist, each audio group (by GROUP-ID) holds exactly the renditions given,
// each with a LANGUAGE, a NAME that is the language's own name and unique in its
// group, AUTOSELECT and one DEFAULT, the first; every video variant comes once per
// group. In the MPD (validated and checked by checkMPD), each Period has one audio
// AdaptationSet per language with lang set and a Label, holding the renditions given,
// the first with Role main.
func checkLanguages(t *testing.T, dir string, groups, sets map[string][]string) {
	t.Helper()
	data := readFile(t, filepath.Join(dir, manifest.MasterName))
	pl, _, err := m3u8.DecodeFrom(bytes.NewReader(data), true)
	if err != nil {
		t.Fatalf("master.m3u8: %v", err)
	}
	mp := pl.(*m3u8.MasterPlaylist)
	lang := map[string]string{} // rendition -> LANGUAGE
	got := map[string][]string{}
	defaults := map[string][]string{}
	for _, alt := range mp.GetAllAlternatives() {
		name := strings.TrimSuffix(alt.URI, "/"+manifest.MediaName)
		got[alt.GroupId] = append(got[alt.GroupId], name)
		lang[name] = alt.Language
		if alt.Name != ladder.LanguageName(alt.Language) || !alt.Autoselect || alt.Type != "AUDIO" {
			t.Errorf("EXT-X-MEDIA of %s: TYPE %s NAME %q LANGUAGE %q AUTOSELECT %v; want AUDIO, the language's name, AUTOSELECT",
				name, alt.Type, alt.Name, alt.Language, alt.Autoselect)
		}
		if alt.Default {
			defaults[alt.GroupId] = append(defaults[alt.GroupId], name)
		}
	}
	for id, want := range groups {
		g := slices.Sorted(slices.Values(got[id]))
		if !slices.Equal(g, want) {
			t.Errorf("group %s holds %v, want %v:\n%s", id, g, want, data)
		}
		if !slices.Equal(defaults[id], want[:1]) {
			t.Errorf("group %s: DEFAULT=YES on %v, want on %s alone", id, defaults[id], want[0])
		}
	}
	if len(got) != len(groups) {
		t.Errorf("audio groups %v, want %v", got, groups)
	}
	perURI := map[string]int{}
	for _, va := range mp.Variants {
		if va.Resolution != "" {
			perURI[va.URI]++
			if groups[va.Audio] == nil {
				t.Errorf("variant %s refers to audio group %q, not one of %v", va.URI, va.Audio, groups)
			}
		}
	}
	for uri, n := range perURI {
		if n != len(groups) {
			t.Errorf("video variant %s is listed %d times, want once per audio group (%d)", uri, n, len(groups))
		}
	}

	m := checkMPD(t, dir)
	for _, p := range m.Periods {
		got := map[string][]string{}
		for _, as := range p.AdaptationSets {
			if as.ContentType != "audio" {
				continue
			}
			// The first set is the default, as in HLS: Role main, which dash.js starts with.
			main := len(as.Roles) == 1 && as.Roles[0].Value == "main"
			if main != (len(got) == 0) {
				t.Errorf("period %s: audio AdaptationSet %d (lang %q) has roles %+v; want main on the first alone", p.Id, len(got), as.Lang, as.Roles)
			}
			if _, dup := got[as.Lang]; dup {
				t.Errorf("period %s: two audio AdaptationSets of lang %q", p.Id, as.Lang)
			}
			var ids []string
			for _, r := range as.Representations {
				ids = append(ids, r.Id)
				if lang[r.Id] != as.Lang {
					t.Errorf("period %s: representation %s in the set of lang %q; HLS says %q", p.Id, r.Id, as.Lang, lang[r.Id])
				}
			}
			got[as.Lang] = slices.Sorted(slices.Values(ids))
			if len(as.Labels) != 1 || as.Labels[0].Value != ladder.LanguageName(as.Lang) {
				t.Errorf("period %s: AdaptationSet of lang %q labelled %+v", p.Id, as.Lang, as.Labels)
			}
		}
		for l, want := range sets {
			if !slices.Equal(got[l], want) {
				t.Errorf("period %s: audio AdaptationSet of lang %q holds %v, want %v", p.Id, l, got[l], want)
			}
		}
		if len(got) != len(sets) {
			t.Errorf("period %s: audio AdaptationSets %v, want %v", p.Id, got, sets)
		}
	}
}

// checkTrackLoudness checks that each pair of renditions carries its own source track:
// the sources' tracks are tones 20 dB apart, so the second of each pair must be about
// 20 dB quieter than the first.
func checkTrackLoudness(t *testing.T, dir string, pairs [][2]string) {
	t.Helper()
	for _, p := range pairs {
		a, b := meanVolume(t, dir, p[0]), meanVolume(t, dir, p[1])
		if d := a - b; d < 15 || d > 25 {
			t.Errorf("mean volume: %s %.1f dB, %s %.1f dB; want %s about 20 dB quieter (its own source track)", p[0], a, p[1], b, p[1])
		} else {
			t.Logf("mean volume: %s %.1f dB, %s %.1f dB", p[0], a, p[1], b)
		}
	}
}

// meanVolume decodes a rendition's media playlist (a closed snapshot of a live one)
// with ffmpeg's volumedetect and returns its mean volume in dB.
func meanVolume(t *testing.T, dir, name string) float64 {
	t.Helper()
	playlist := filepath.Join(dir, name, manifest.MediaName)
	data := readFile(t, playlist)
	if !bytes.Contains(data, []byte("#EXT-X-ENDLIST")) {
		snap := filepath.Join(dir, name, ".volume.m3u8")
		if err := os.WriteFile(snap, append(data, "#EXT-X-ENDLIST\n"...), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(snap)
		playlist = snap
	}
	return testmedia.MeanVolume(t, "", playlist)
}

// TestPlayersLanguages plays a file job with English and French audio (the ladder of
// TestLanguagesVOD: tracks: all at two bitrates) and a live RTSP job with two audio
// tracks (the ladder of TestLanguagesLiveRTSP) in headless Chromium with hls.js,
// dash.js and Shaka: each must list both languages, start in English, switch to French
// (fetching the French rendition's segments and playing on) and back. See
// web/test/players.mjs (runLanguages).
func TestPlayersLanguages(t *testing.T) {
	requireBrowser(t)
	profiles := t.TempDir()
	writeFile(t, filepath.Join(profiles, "langs.yaml"), languagesLadder)
	writeFile(t, filepath.Join(profiles, "cam.yaml"), camLadder)
	d := startDaemon(t, profiles)
	testmedia.WriteSample(t, filepath.Join(d.mediaRoot, "film.mp4"), testmedia.SampleOptions{
		Width: 640, Height: 360, FPS: 30, Duration: 20 * time.Second, Languages: []string{"eng", "fra"},
	})
	src := testmedia.StartRTSP(t, testmedia.SourceOptions{Width: 320, Height: 180, FPS: 25, AudioTracks: 2})
	live := d.create(t, `{"source":"`+src.URL+`","ladder":"cam","id":"cam"}`)
	v := d.create(t, `{"source":"film.mp4","ladder":"langs","id":"film"}`)
	d.waitFor(t, v.ID, 3*time.Minute, "finish", func(v job.View) bool { return v.State == job.Finished })
	d.waitFor(t, live.ID, time.Minute, "3 segments per rendition", func(v job.View) bool {
		_, err := os.Stat(filepath.Join(d.out, live.ID, manifest.MPDName))
		return v.State == job.Running && err == nil && v.Segments >= 3*len(v.Renditions)
	})
	cfg := map[string]any{"base": d.api, "langs": []string{live.ID, v.ID}}
	if only := os.Getenv("PLAYERS_ONLY"); only != "" {
		cfg["only"] = strings.Split(only, ",")
	}
	var res browserResult
	if err := runNode(t, 3*time.Minute, "players.mjs", cfg, &res); err != nil {
		t.Fatal(err)
	}
	reportSessions(t, res)
	t.Logf("browser run %.1fs", res.Seconds)
}
