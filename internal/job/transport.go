package job

import (
	"fmt"

	"github.com/transcoderd/transcoderd/internal/source"
)

// The transport of an RTSP source, run by run (ffmpeg.RTSPTransport decides): the
// runner asks nextTransport before each ffmpeg run and tells transportEnded after
// it; the probe tells probedOver. Other kinds of source have no transport.

// nextTransport returns the transport of the next ffmpeg run: TCP or UDP for an
// RTSP source, "" for others.
func (j *Job) nextTransport() source.Transport {
	if j.src.Kind != source.RTSP {
		return ""
	}
	j.rtsp.Mode = j.src.Transport
	return j.rtsp.Next()
}

// probedOver records the transport the probe got its answer over, so that the
// first run uses it, and says so when the server refused TCP.
func (j *Job) probedOver(tr source.Transport) {
	if j.src.Kind != source.RTSP || tr == "" {
		return
	}
	j.rtsp.Mode = j.src.Transport
	if out := j.rtsp.Probed(tr); out.To != "" {
		j.transportChanged(source.TransportTCP, out.To, out.Reason)
	}
}

// transportEnded is told how a run over tr ended: runErr (nil when ffmpeg exited
// cleanly) and whether it wrote a segment. It says in the job when the next run
// changes transport, and returns whether that run may start at once (the server
// answered; only the transport was wrong) and runErr with what the transport had
// to do with it.
func (j *Job) transportEnded(tr source.Transport, runErr error, media bool) (bool, error) {
	if tr == "" {
		return false, runErr
	}
	out := j.rtsp.Ended(tr, media, j.stderrTail())
	if out.To != "" {
		j.transportChanged(tr, out.To, out.Reason)
	}
	if out.Reason != "" && !out.AtOnce && runErr != nil {
		runErr = fmt.Errorf("%s: %w", out.Reason, runErr)
	}
	return out.AtOnce, runErr
}

func (j *Job) transportChanged(from, to source.Transport, why string) {
	j.log.Warn().Str("from", string(from)).Str("to", string(to)).Msg("rtsp transport: " + why)
	j.event(Event{Type: "transport", Message: fmt.Sprintf("%s → %s: %s", from, to, why)})
}
