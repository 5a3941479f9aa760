package daemon

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestPushHEVC is an encoder publishing HEVC: over Enhanced RTMP (as OBS 29.1 and later
// do; gortmplib's client in the test, since ffmpeg 5.1 cannot) and over SRT (MPEG-TS).
// The job decodes it and plays.
func TestPushHEVC(t *testing.T) {
	if testing.Short() {
		t.Skip("push test takes about 30 s")
	}
	d := startDaemon(t, "", func(c *Config) {
		c.IngestRTMPListen, c.IngestSRTListen, c.IngestPublicHost = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1"
	})
	for _, proto := range []string{"rtmp", "srt"} {
		t.Run(proto, func(t *testing.T) {
			v := d.create(t, `{"source":"push:`+proto+`","ladder":"test","id":"hevc-`+proto+`"}`)
			url := v.Ingest.RTMPURL + "/" + v.Ingest.StreamKey
			if proto == "srt" {
				url = v.Ingest.SRTURL + "&pkt_size=1316"
			}
			pub := testmedia.Publish(t, url, testmedia.SourceOptions{Width: 320, Height: 180, FPS: 25, HEVC: true})
			v = d.waitFor(t, v.ID, 40*time.Second, "segments", func(v job.View) bool {
				return v.State == job.Running && v.Segments >= 3*len(v.Renditions)
			})
			if p := v.Ingest.Publisher; p == nil || string(p.Protocol) != proto || p.Video != "h265" || p.Audio != "aac" || p.Width != 320 {
				t.Errorf("publisher %+v, want %s h265/aac 320 wide", p, proto)
			}
			if v.Input == nil || !strings.Contains(strings.ToLower(v.Input.VideoCodec), "hevc") {
				t.Errorf("input %+v, want hevc", v.Input)
			}
			checkOutputs(t, filepath.Join(d.out, v.ID), v)
			pub.Kill()
		})
	}
}
