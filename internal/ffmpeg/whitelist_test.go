package ffmpeg

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/source"
	"github.com/transcoderd/transcoderd/internal/supervise"
)

func TestWhitelistArgs(t *testing.T) {
	// Protocols that read local files or wrap other URLs: no kind but File may
	// name any of them, and File names only "file".
	dangerous := []string{"file", "concat", "concatf", "subfile", "data", "pipe", "cache", "async", "hls", "bluray", "unix", "ftp", "sftp", "gopher", "gophers"}
	// Demuxers that open what they name.
	following := []string{"hls", "dash", "concat", "imf", "webm_dash_manifest", "image2", "sdp", "lavfi", "rtsp", "rtp"}
	tests := []struct {
		kind      source.Kind
		protocols string
		formats   bool
	}{
		{source.RTMP, "rtmp,rtmps,tcp,tls", false},
		{source.RTSP, "rtsp,rtsps,rtp,srtp,udp,tcp,tls", false},
		{source.SRT, "srt,udp", false},
		{source.HTTP, "http,https,tcp,tls,crypto", false},
		{source.File, "file", true},
		{"gopher", "file", true}, // unknown kinds get the strictest list
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			args := whitelistArgs(tt.kind)
			want := []string{"-protocol_whitelist", tt.protocols}
			if tt.formats {
				want = append(want, "-format_whitelist", fileFormats)
			}
			if !slices.Equal(args, want) {
				t.Fatalf("whitelistArgs(%s) = %q, want %q", tt.kind, args, want)
			}
			for _, p := range strings.Split(tt.protocols, ",") {
				if slices.Contains(dangerous, p) && !(tt.formats && p == "file") {
					t.Errorf("%s may use protocol %q", tt.kind, p)
				}
			}
		})
	}
	for _, f := range following {
		if slices.Contains(strings.Split(fileFormats, ","), f) {
			t.Errorf("file sources may use the %s demuxer, which opens what it names", f)
		}
	}
}

// TestWhitelistInEveryInput: the whitelists are input options of every source
// kind, before -i, in ffmpeg's argv (ffprobe shares inputArgs).
func TestWhitelistInEveryInput(t *testing.T) {
	for _, kind := range []source.Kind{source.RTMP, source.RTSP, source.SRT, source.HTTP, source.File} {
		j := validJob()
		j.Kind, j.Source, j.Live = kind, "rtmp://h/x", kind != source.File
		if kind == source.File {
			j.Source = "/media/in.mp4"
		}
		argv, err := BuildArgs(j)
		if err != nil {
			t.Fatal(err)
		}
		wl, in := slices.Index(argv, "-protocol_whitelist"), slices.Index(argv, "-i")
		if wl < 0 || wl > in || argv[wl+1] != protocolWhitelist[kind] {
			t.Errorf("%s: no -protocol_whitelist %s before -i: %q", kind, protocolWhitelist[kind], argv[:in+2])
		}
		if fw := slices.Index(argv, "-format_whitelist"); (fw >= 0 && fw < in) != (kind == source.File) {
			t.Errorf("%s: -format_whitelist at %d, -i at %d", kind, fw, in)
		}
	}
}

// TestWhitelistNamesExist: every name in the whitelists is one this ffmpeg
// knows, so that a typo cannot silently refuse (or, for a format alias,
// silently drop) a kind of source.
func TestWhitelistNamesExist(t *testing.T) {
	ff := needTool(t, "ffmpeg")
	list := func(what string) []string {
		out, err := exec.Command(ff, "-hide_banner", "-"+what).Output()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			switch {
			case what == "protocols" && len(f) == 1:
				names = append(names, f[0])
			case what == "demuxers" && len(f) >= 2 && strings.Contains(f[0], "D"):
				names = append(names, strings.Split(f[1], ",")...)
			}
		}
		return names
	}
	protocols, demuxers := list("protocols"), list("demuxers")
	notProtocols := []string{"rtsp", "rtsps"} // the RTSP demuxer's own names; harmless in the list
	for kind, wl := range protocolWhitelist {
		for _, p := range strings.Split(wl, ",") {
			if !slices.Contains(protocols, p) && !slices.Contains(notProtocols, p) {
				t.Errorf("%s: ffmpeg has no protocol %q", kind, p)
			}
		}
	}
	for _, f := range strings.Split(fileFormats, ",") {
		if !slices.Contains(demuxers, f) {
			t.Errorf("ffmpeg has no demuxer %q", f)
		}
	}
}

// TestWhitelistStopsReferences plants sources inside a media root that point at
// a file outside it, a distinctive 176x144 video. Without the whitelists
// ffprobe reads that file through them (checked, so the test proves
// something); with them both Probe and the job's ffmpeg refuse, say why, and
// write nothing.
func TestWhitelistStopsReferences(t *testing.T) {
	ff := needTool(t, "ffmpeg")
	ffprobe := needTool(t, "ffprobe")
	tmp := t.TempDir()
	outside := filepath.Join(tmp, "outside")
	root := filepath.Join(tmp, "media")
	for _, d := range []string{outside, root} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	secret := []string{"-f", "lavfi", "-i", "testsrc2=size=176x144:rate=10:duration=1", "-c:v", "libx264", "-preset", "ultrafast"}
	secretTS := makeMedia(t, outside, "secret.ts", append(secret, "-f", "mpegts")...)
	secretMP4 := makeMedia(t, outside, "secret.mp4", secret...)
	playlist := func(uri string) string {
		return "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n" + uri + "\n#EXT-X-ENDLIST\n"
	}
	mpd := `<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT1S" minBufferTime="PT1S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">` +
		`<Period><AdaptationSet mimeType="video/mp4"><Representation id="v" bandwidth="100000" width="176" height="144"><BaseURL>file://` + secretMP4 + `</BaseURL></Representation></AdaptationSet></Period></MPD>`

	srv := httptest.NewServer(http.FileServer(http.Dir(root)))
	defer srv.Close()

	tests := []struct {
		name, file, data string
		kind             source.Kind
		want             string
	}{
		{"hls absolute path", "abs.m3u8", playlist(secretTS), source.File, "hls format refused"},
		{"hls file URL", "url.m3u8", playlist("file:" + secretTS), source.File, "hls format refused"},
		{"hls relative traversal", "rel.m3u8", playlist("../outside/secret.ts"), source.File, "hls format refused"},
		{"hls concat URL", "concat.m3u8", playlist("concat:" + secretTS), source.File, "hls format refused"},
		{"hls with a media extension", "looks-like.mp4", playlist(secretTS), source.File, "hls format refused"},
		{"concat list", "list.ffconcat", "ffconcat version 1.0\nfile " + secretMP4 + "\n", source.File, "concat format refused"},
		{"dash manifest", "evil.mpd", mpd, source.File, "dash format refused"},
		{"hls over http to a file URL", "http.m3u8", playlist("file:" + secretTS), source.HTTP, "protocol 'file' refused"},
	}
	leaked := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(root, tt.file)
			if err := os.WriteFile(path, []byte(tt.data), 0o644); err != nil {
				t.Fatal(err)
			}
			src := path
			if tt.kind == source.HTTP {
				src = srv.URL + "/" + tt.file
			}

			// The control: ffprobe as it would run without the whitelists.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, input := inputArgs(tt.kind, src, false, "")
			out, _ := exec.CommandContext(ctx, ffprobe, "-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0", input).Output()
			if strings.Contains(string(out), "176,144") {
				leaked++
				t.Logf("without the whitelists ffprobe reads the outside file: %q", strings.TrimSpace(string(out)))
			}

			info, err := Probe(ctx, ffprobe, src, tt.kind)
			if err == nil {
				t.Fatalf("Probe succeeded: %+v", info)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Probe error %q does not contain %q", err, tt.want)
			}

			// The job's ffmpeg, should the file change between probe and run.
			j := Job{
				Source: src, Kind: tt.kind, Live: tt.kind != source.File, Preset: "ultrafast", Dir: filepath.Join(tmp, "out-"+tt.file),
				Plan: ladder.Plan{FPS: 10, GOP: 10, SegmentDuration: time.Second, Video: []ladder.PlannedVideo{rung("144p", 176, 144, 200_000, "baseline")}},
			}
			for _, d := range OutputDirs(j) {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			argv, err := BuildArgs(j)
			if err != nil {
				t.Fatal(err)
			}
			stderr := supervise.NewTail(20)
			cmd := exec.CommandContext(ctx, ff, argv...)
			cmd.Stderr = stderr
			if err := cmd.Run(); err == nil {
				t.Errorf("ffmpeg succeeded on %s", tt.file)
			}
			if w := whitelistRefusal(stderr.Lines()); !strings.Contains(w, strings.Split(tt.want, " ")[0]) {
				t.Errorf("ffmpeg did not stop on the whitelist (%q); stderr:\n%s", w, strings.Join(stderr.Lines(), "\n"))
			}
			for _, d := range OutputDirs(j) {
				if entries, _ := os.ReadDir(d); len(entries) > 0 {
					t.Errorf("ffmpeg wrote %d files into %s", len(entries), d)
				}
			}
		})
	}
	if leaked == 0 {
		t.Error("no planted source leaks the outside file even without the whitelists: this test proves nothing on this ffmpeg")
	}
}

func TestWhitelistRefusal(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  string
	}{
		{"none", []string{"file:/m/a.mp4: Invalid data found when processing input"}, ""},
		{"format", []string{"[hls @ 0x55c42f7206c0] Format not on whitelist 'mov,mp4'", "file:/m/a.m3u8: Invalid argument"}, "hls format refused: "},
		{"protocol", []string{"[file @ 0x556ca813ba00] Protocol 'file' not on whitelist 'http,https'!", "[hls @ 0x1] Error when loading first segment 'file:/x'"}, "protocol 'file' refused: "},
		{"other shape", []string{"something not on whitelist here"}, "something not on whitelist here"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := whitelistRefusal(tt.lines)
			if tt.want == "" && got != "" || !strings.HasPrefix(got, tt.want) {
				t.Errorf("whitelistRefusal = %q, want prefix %q", got, tt.want)
			}
		})
	}
}

// TestProbeNamesRefusalOnTimeout: a live HLS playlist whose segments are
// refused makes ffprobe retry until the deadline; Probe still says why.
func TestProbeNamesRefusalOnTimeout(t *testing.T) {
	ffprobe := needTool(t, "ffprobe")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nfile:/srv/secret.ts\n#EXTINF:1.0,\nconcat:/srv/secret.ts\n"))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := Probe(ctx, ffprobe, srv.URL+"/live.m3u8", source.HTTP)
	if err == nil || !strings.Contains(err.Error(), "protocol 'file' refused") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Probe = %v, want the refusal and the deadline", err)
	}
}
