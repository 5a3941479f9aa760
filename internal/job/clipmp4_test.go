package job

import (
	"errors"
	"strings"
	"testing"

	"github.com/transcoderd/transcoderd/internal/manifest"
)

// TestMP4Of: the rung of a clip's MP4 file, asked for or the top one present over the
// whole clip; one missing part of it (shed), or unknown, is refused naming the others.
func TestMP4Of(t *testing.T) {
	cut := &manifest.Presentation{Video: []manifest.Track{
		{Name: "1080p", Withdrawn: true}, {Name: "720p"}, {Name: "360p"},
	}}
	for _, tc := range []struct {
		name string
		req  ClipRequest
		cut  *manifest.Presentation
		rung string // "" with err: refused
		err  string
	}{
		{name: "default", req: ClipRequest{ID: "a", MP4: true}, cut: cut, rung: "720p"},
		{name: "asked", req: ClipRequest{ID: "a", MP4: true, Rung: "360p"}, cut: cut, rung: "360p"},
		{name: "shed", req: ClipRequest{ID: "a", MP4: true, Rung: "1080p"}, cut: cut, err: "ask for one of 720p, 360p"},
		{name: "unknown", req: ClipRequest{ID: "a", MP4: true, Rung: "4k"}, cut: cut, err: "ask for one of 720p, 360p"},
		{name: "rung without mp4", req: ClipRequest{ID: "a", Rung: "360p"}, cut: cut, err: `"mp4": true`},
		{name: "audio only", req: ClipRequest{ID: "a", MP4: true}, cut: &manifest.Presentation{}, rung: ""},
		{name: "all shed", req: ClipRequest{ID: "a", MP4: true}, cut: &manifest.Presentation{Video: cut.Video[:1]}, err: "no video rendition spans"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := mp4Of(tc.req, tc.cut)
			if tc.err != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("err = %v, want ErrInvalid naming %q", err, tc.err)
				}
				return
			}
			if err != nil || x == nil || x.Rung != tc.rung || x.State != mp4Writing || x.URL != "clips/a/a.mp4" {
				t.Errorf("mp4Of = %+v, %v: want rung %q, writing, clips/a/a.mp4", x, err, tc.rung)
			}
		})
	}
}
