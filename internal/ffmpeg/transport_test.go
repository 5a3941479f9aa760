package ffmpeg

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/source"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// What ffmpeg 5.1 prints (seen against testmedia.StartRTSPUDP and a server that
// sets up UDP but sends nothing).
var (
	stderr461    = []string{"[rtsp @ 0x5623875015c0] method SETUP failed: 461 Unsupported Transport", "rtsp://127.0.0.1:41945/cam: Protocol not supported"}
	stderrSilent = []string{"[rtsp @ 0x5570261f59c0] Could not find codec parameters for stream 0 (Video: h264, none): unspecified size", "Output file #0 does not contain any stream"}
	stderrDown   = []string{"rtsp://127.0.0.1:41945/cam: Connection refused"}
)

// TestRTSPTransport walks RTSPTransport through runs: each step is the transport
// the run gets, how it ended, and what must change for the next.
func TestRTSPTransport(t *testing.T) {
	type run struct {
		want   source.Transport // the run's transport (Next)
		media  bool
		stderr []string
		to     source.Transport // RTSPOutcome.To
		atOnce bool
		reason string // in RTSPOutcome.Reason; "" wants none
	}
	const tcp, udp = source.TransportTCP, source.TransportUDP
	tests := []struct {
		name   string
		mode   source.Transport
		probed source.Transport // Probed before the first run; "" for none
		again  bool             // and probed again (a queued job): nothing new to tell
		runs   []run
	}{
		{name: "tcp server", probed: tcp, runs: []run{
			{want: tcp, media: true},
			{want: tcp, stderr: stderrDown},
			{want: tcp, media: true},
		}},
		{name: "refused tcp falls back to udp at once and stays", runs: []run{
			{want: tcp, stderr: stderr461, to: udp, atOnce: true, reason: "refuses RTP over TCP (461 Unsupported Transport): pulling over UDP"},
			{want: udp, media: true},
			{want: udp, media: true}, // a reconnect does not pay the refused TCP again
		}},
		{name: "probe over udp: the first run needs no refusal", probed: udp, again: true, runs: []run{
			{want: udp, media: true},
		}},
		{name: "a source down keeps udp", runs: []run{
			{want: tcp, stderr: stderr461, to: udp, atOnce: true},
			{want: udp, media: true},
			{want: udp, stderr: stderrDown},
			{want: udp, stderr: nil},
			{want: udp, media: true},
		}},
		{name: "silent udp goes back to tcp, after the backoff, and says why", runs: []run{
			{want: tcp, stderr: stderr461, to: udp, atOnce: true},
			{want: udp, stderr: stderrSilent, to: tcp, reason: "no media arrived over UDP: a firewall or NAT"},
			{want: tcp, stderr: stderr461, to: udp, atOnce: true},
		}},
		{name: "a server that now refuses udp gets tcp at once", probed: udp, runs: []run{
			{want: udp, stderr: stderr461, to: tcp, atOnce: true, reason: "refuses RTP over UDP"},
			{want: tcp, media: true},
		}},
		{name: "a server that refuses both is not hammered", runs: []run{
			{want: tcp, stderr: stderr461, to: udp, atOnce: true},
			{want: udp, stderr: stderr461, to: tcp, reason: "refuses RTP over both TCP and UDP"},
			{want: tcp, stderr: stderr461, to: udp, atOnce: true},
			{want: udp, stderr: stderr461, to: tcp},
		}},
		{name: "forced tcp is never changed, and says why it fails", mode: tcp, probed: udp, runs: []run{
			{want: tcp, stderr: stderr461, reason: "refuses RTP over TCP (461 Unsupported Transport), and the source forces ?transport=tcp: use ?transport=udp or auto"},
			{want: tcp, stderr: stderrDown},
		}},
		{name: "forced udp", mode: udp, runs: []run{
			{want: udp, stderr: stderrSilent, reason: "no media arrived over UDP"},
			{want: udp, stderr: stderr461, reason: "and the source forces ?transport=udp: use ?transport=tcp or auto"},
			{want: udp, media: true},
		}},
		{name: "explicit auto", mode: source.TransportAuto, runs: []run{
			{want: tcp, stderr: stderr461, to: udp, atOnce: true},
			{want: udp, media: true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := RTSPTransport{Mode: tc.mode}
			if tc.probed != "" {
				out := tr.Probed(tc.probed)
				fellBack := tc.probed == source.TransportUDP && tc.mode != tcp && tc.mode != udp
				if fellBack != (out.To == udp) || fellBack != strings.Contains(out.Reason, "refuses RTP over TCP (461 Unsupported Transport): pulling over UDP") {
					t.Errorf("Probed(%q) = %+v", tc.probed, out)
				}
			}
			if tc.again {
				if out := tr.Probed(tc.probed); out != (RTSPOutcome{}) {
					t.Errorf("Probed(%q) again = %+v, want nothing new", tc.probed, out)
				}
			}
			for i, r := range tc.runs {
				if got := tr.Next(); got != r.want {
					t.Fatalf("run %d: Next() = %q, want %q", i+1, got, r.want)
				}
				out := tr.Ended(r.want, r.media, r.stderr)
				if out.To != r.to || out.AtOnce != r.atOnce {
					t.Errorf("run %d: Ended = %+v, want To %q AtOnce %v", i+1, out, r.to, r.atOnce)
				}
				if r.reason == "" && out.Reason != "" && out.To == "" || r.reason != "" && !strings.Contains(out.Reason, r.reason) {
					t.Errorf("run %d: Reason %q, want %q", i+1, out.Reason, r.reason)
				}
			}
		})
	}
}

// TestProbeRTSPTransport probes real RTSP servers: one that refuses RTP over TCP
// (461, as VLC's does), which Probe must read over UDP, and one that speaks TCP
// only; a forced transport is kept, and refused with a reason.
func TestProbeRTSPTransport(t *testing.T) {
	ffprobe := needTool(t, "ffprobe")
	opts := testmedia.SourceOptions{Width: 320, Height: 180, FPS: 25}
	udpOnly := testmedia.StartRTSPUDP(t, opts)
	tcpOnly := testmedia.StartRTSP(t, opts)
	tests := []struct {
		name    string
		url     string
		mode    source.Transport
		want    source.Transport
		wantErr []string
	}{
		{name: "udp server, auto", url: udpOnly.URL, mode: source.TransportAuto, want: source.TransportUDP},
		{name: "udp server, forced udp", url: udpOnly.URL, mode: source.TransportUDP, want: source.TransportUDP},
		{
			name: "udp server, forced tcp", url: udpOnly.URL, mode: source.TransportTCP,
			wantErr: []string{"probe " + udpOnly.URL + ": the RTSP server refuses RTP over TCP (461 Unsupported Transport), and the source forces ?transport=tcp", "Protocol not supported"},
		},
		{name: "tcp server, auto", url: tcpOnly.URL, mode: source.TransportAuto, want: source.TransportTCP},
		{
			name: "tcp server, forced udp", url: tcpOnly.URL, mode: source.TransportUDP,
			wantErr: []string{"refuses RTP over UDP (461 Unsupported Transport), and the source forces ?transport=udp: use ?transport=tcp or auto"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			info, got, err := ProbeTransport(ctx, ffprobe, tc.url, source.RTSP, tc.mode)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("ProbeTransport succeeded over %q: %+v", got, info)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || !info.HasVideo || info.Width != 320 || info.Height != 180 || !info.HasAudio {
				t.Errorf("ProbeTransport = %q, %+v; want %q and 320x180 with audio", got, info, tc.want)
			}
		})
	}
	// Probe, as the job's admission calls it, reads the server that refuses TCP
	// too; before, it asked for TCP alone and failed.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := Probe(ctx, ffprobe, udpOnly.URL, source.RTSP); err != nil {
		t.Errorf("Probe of a server that refuses TCP: %v", err)
	}
}
