package ffmpeg

import (
	"strings"

	"github.com/transcoderd/transcoderd/internal/source"
)

// Why transcoderd chooses the RTSP transport of each run itself, rather than let
// ffmpeg negotiate. ffmpeg 5.1's RTSP demuxer, with no -rtsp_transport, offers UDP
// first (the lowest bit of its mask wins), TCP when the server answers 461, and
// TCP again when no UDP packet came before the timeout ("UDP timeout, retrying with
// TCP"; 10 s with our -timeout): UDP first means that through NAT or a firewall
// every start waits out that timeout, and that a lossy UDP path that does deliver
// is kept, with smeared pictures. -rtsp_flags
// prefer_tcp with -rtsp_transport tcp+udp does try TCP first and falls back to UDP
// on 461 in the same connection, but then nothing but an error line tells which
// transport a run got. So each run gets one transport, -rtsp_transport tcp or udp,
// and RTSPTransport picks it from what the runs before taught: the job shows the
// transport it uses, says when it changes, and explains a forced one that cannot
// work. The price is one refused ffmpeg start (0.2 s against a local server) when
// nothing is known yet: after a daemon restart (a resumed job is not probed), or
// once UDP has failed for want of UDP.

// refusedSetup is how ffmpeg (5.1 and later) reports that the server answered a
// SETUP with 461 Unsupported Transport: "[rtsp @ 0x...] method SETUP failed: 461
// Unsupported Transport" (the reason phrase is the server's: VLC writes "Unsupported
// transport"), followed by "<url>: Protocol not supported".
const refusedSetup = "SETUP failed: 461"

// noMediaSign is what ffmpeg and ffprobe print when an RTSP session was set up but
// no packet came before the socket timeout: nothing to find the codec parameters in.
const noMediaSign = "Could not find codec parameters"

// refused reports whether ffmpeg's stderr lines say the RTSP server refused the
// transport ffmpeg asked for.
func refused(stderr []string) bool {
	for _, l := range stderr {
		if strings.Contains(l, refusedSetup) {
			return true
		}
	}
	return false
}

// silent reports whether ffmpeg's stderr lines say that nothing arrived.
func silent(stderr []string) bool {
	for _, l := range stderr {
		if strings.Contains(l, noMediaSign) {
			return true
		}
	}
	return false
}

// Reasons given in errors, events and logs.
const (
	tcpRefused  = "the RTSP server refuses RTP over TCP (461 Unsupported Transport)"
	udpRefused  = "the RTSP server refuses RTP over UDP (461 Unsupported Transport)"
	bothRefused = "the RTSP server refuses RTP over both TCP and UDP (461 Unsupported Transport)"
	udpSilent   = "no media arrived over UDP: a firewall or NAT between the source and this host may drop it " +
		"(ffmpeg receives RTP on local UDP ports 5000 to 65000; or pull over TCP)"
)

// forcedHint explains a run or probe over a transport that the source forces
// (?transport=) and that the server refused.
func forcedHint(tr source.Transport) string {
	if tr == source.TransportUDP {
		return udpRefused + ", and the source forces ?transport=udp: use ?transport=tcp or auto"
	}
	return tcpRefused + ", and the source forces ?transport=tcp: use ?transport=udp or auto"
}

// RTSPTransport picks the transport of each ffmpeg run of one RTSP job, and
// remembers what worked. A source that forces one (?transport=tcp or udp) gets it
// every time. In auto mode a job starts on TCP; when the server refuses TCP (461)
// the next run, at once, is over UDP, and so are the runs after it: a reconnect
// (the camera rebooted, the network dropped) does not pay the refused TCP attempt
// again. Only a UDP run that fails because of UDP sends the next one back to TCP:
// the server now refuses UDP (461; at once), or the session was set up and no
// packet came (a firewall or NAT drops UDP; after the backoff). The zero value is
// auto mode; it is not safe for concurrent use.
type RTSPTransport struct {
	// Mode is the source's choice (source.Source.Transport); "" is auto.
	Mode   source.Transport
	next   source.Transport // auto mode: the next run's; "" is TCP
	atOnce bool             // the last run's outcome was a change at once
}

// Next returns the transport of the next run: TCP or UDP.
func (t *RTSPTransport) Next() source.Transport {
	switch {
	case t.Mode == source.TransportTCP || t.Mode == source.TransportUDP:
		return t.Mode
	case t.next == "":
		return source.TransportTCP
	}
	return t.next
}

// Worked records that a probe or a run got media over tr: the runs after it use tr.
func (t *RTSPTransport) Worked(tr source.Transport) {
	if tr == source.TransportTCP || tr == source.TransportUDP {
		t.next = tr
	}
}

// Probed records the transport a probe (ProbeTransport) got its answer over, for
// the first run. In auto mode, UDP means that the server refused TCP: the outcome
// says so, as a change from TCP, once (a job probed again is told nothing new).
func (t *RTSPTransport) Probed(tr source.Transport) RTSPOutcome {
	was := t.Next()
	t.Worked(tr)
	if now := t.Next(); now == was || now != source.TransportUDP {
		return RTSPOutcome{}
	}
	return RTSPOutcome{To: source.TransportUDP, Reason: tcpRefused + ": pulling over UDP"}
}

// RTSPOutcome is what a run taught RTSPTransport.
type RTSPOutcome struct {
	// To is the next run's transport when it changes; "" when it does not.
	To source.Transport
	// AtOnce is set when the next run may start without the backoff: the server
	// answered, only the transport was wrong.
	AtOnce bool
	// Reason says why the transport changes, or, when it does not, what the run's
	// transport had to do with its failure; "" when nothing.
	Reason string
}

// Ended records how a run over used ended: media reports whether it wrote a
// segment, stderr is its last lines (ffmpeg.Tail). It returns what changes for the
// next run.
func (t *RTSPTransport) Ended(used source.Transport, media bool, stderr []string) RTSPOutcome {
	out := t.ended(used, media, stderr)
	if out.AtOnce && t.atOnce {
		// The other transport was refused just before: a server that refuses both
		// must not have ffmpeg started again and again without a pause.
		out.AtOnce, out.Reason = false, bothRefused
	}
	t.atOnce = out.AtOnce
	return out
}

func (t *RTSPTransport) ended(used source.Transport, media bool, stderr []string) RTSPOutcome {
	if media {
		t.Worked(used)
		return RTSPOutcome{}
	}
	auto := t.Mode != source.TransportTCP && t.Mode != source.TransportUDP
	no := refused(stderr)
	switch {
	case !auto && no:
		return RTSPOutcome{Reason: forcedHint(used)}
	case !auto && used == source.TransportUDP && silent(stderr):
		return RTSPOutcome{Reason: udpSilent}
	case !auto:
		return RTSPOutcome{}
	case used == source.TransportTCP && no:
		t.next = source.TransportUDP
		return RTSPOutcome{To: source.TransportUDP, AtOnce: true, Reason: tcpRefused + ": pulling over UDP"}
	case used == source.TransportUDP && no:
		t.next = source.TransportTCP
		return RTSPOutcome{To: source.TransportTCP, AtOnce: true, Reason: udpRefused + ": trying TCP again"}
	case used == source.TransportUDP && silent(stderr):
		t.next = source.TransportTCP
		return RTSPOutcome{To: source.TransportTCP, Reason: udpSilent + ": trying TCP again"}
	}
	// The source is down, or refuses us for another reason (404, 401): the
	// transport is not the trouble, keep it.
	return RTSPOutcome{}
}
