package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestPublishHEVC publishes HEVC over each protocol (Enhanced RTMP with gortmplib's
// client, SRT with ffmpeg) and checks that the pipe of a run carries it as MPEG-TS that
// ffprobe reads: hevc at the publisher's size, and aac.
func TestPublishHEVC(t *testing.T) {
	for _, p := range []Protocol{RTMP, SRT} {
		t.Run(string(p), func(t *testing.T) {
			h, _ := newTestHub(t, 10*time.Second)
			st, _, urls := addStreamFor(t, h, "stage-a")
			pub := testmedia.Publish(t, urls[p], testmedia.SourceOptions{Width: 320, Height: 180, FPS: 25, HEVC: true})
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if err := st.Wait(ctx); err != nil {
				pub.Kill()
				t.Fatalf("no publisher: %v: %s", err, pub.Stderr())
			}
			if pr := st.Publisher(); pr == nil || pr.Video != "h265" || pr.Audio != "aac" || pr.Width != 320 || pr.Height != 180 || pr.FPS != 25 {
				t.Errorf("publisher %+v, want h265 aac 320x180 at 25 fps", pr)
			}
			got := drain(t, st)
			time.Sleep(2 * time.Second)
			h.Remove("stage-a") // ends the pipe at once, whatever the protocol
			ts := <-got
			pr, kinds := probeTS(t, ts)
			if len(kinds) != 2 || kinds[0] != "video:hevc" || kinds[1] != "audio:aac" || pr.Streams[0].Width != 320 {
				t.Errorf("pipe carried %v, want video:hevc (320 wide) and audio:aac", kinds)
			}
		})
	}
}
