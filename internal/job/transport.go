package job

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/source"
)

// rtspInput is an RTSP source: ffmpeg opens its URL itself, over TCP or UDP, one
// transport per run, as ffmpeg.RTSPTransport picks it from what the probe and the
// runs before taught. It belongs to one job: Create's probe, then its runner, whose
// probe of a source that came back (replan.go) runs beside the next run's Open.
type rtspInput struct {
	urlInput
	mu     sync.Mutex
	t      ffmpeg.RTSPTransport
	used   source.Transport   // the last run's
	probed ffmpeg.RTSPOutcome // what the last probe taught, until the runner tells it
}

func newRTSPInput(src source.Source, ffprobe string) *rtspInput {
	return &rtspInput{urlInput: urlInput{src: src, ffprobe: ffprobe}, t: ffmpeg.RTSPTransport{Mode: src.Transport}}
}

func (in *rtspInput) Probe(ctx context.Context) (ladder.SourceInfo, error) {
	info, tr, err := ffmpeg.ProbeTransport(ctx, in.ffprobe, in.src.URL, in.src.Kind, in.src.Transport)
	if err == nil {
		in.mu.Lock()
		defer in.mu.Unlock()
		if out := in.t.Probed(tr); out.To != "" {
			in.probed = out
		}
	}
	return info, err
}

// Open gives the run the transport it is to use, in Feed.Source.Transport.
func (in *rtspInput) Open(context.Context) (Feed, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.used = in.t.Next()
	src := in.src
	src.Transport = in.used
	return Feed{Source: src}, nil
}

// transporter is an Input whose runs reach the source over one of several transports
// (rtspInput): the runner tells it how each run ended and says in the job what
// changes.
type transporter interface {
	// learned returns, once, the change a probe taught: the first run's transport.
	learned() (from source.Transport, out ffmpeg.RTSPOutcome)
	// ended is told how the last run ended: whether it wrote a segment, and its
	// stderr's last lines.
	ended(media bool, stderr []string) (from source.Transport, out ffmpeg.RTSPOutcome)
}

func (in *rtspInput) learned() (source.Transport, ffmpeg.RTSPOutcome) {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := in.probed
	in.probed = ffmpeg.RTSPOutcome{}
	return source.TransportTCP, out
}

func (in *rtspInput) ended(media bool, stderr []string) (source.Transport, ffmpeg.RTSPOutcome) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.used, in.t.Ended(in.used, media, stderr)
}

// errTransport is returned by a run whose source answered, but not over the
// transport it tried: the next run starts at once over the other.
var errTransport = errors.New("the rtsp transport changes")

// tellProbed says in the job what the probe taught of the transport: a server that
// refuses TCP.
func (r *runner) tellProbed() {
	if t, ok := r.in.(transporter); ok {
		if from, out := t.learned(); out.To != "" {
			r.transportChanged(from, out.To, out.Reason)
		}
	}
}

// transportEnded tells the input how a run ended (runErr; media: it wrote a
// segment), says in the job when the next run changes transport, and returns
// errTransport when that run may start at once (the server answered; only the
// transport was wrong), or runErr with what the transport had to do with it.
func (r *runner) transportEnded(runErr error, media bool) error {
	t, ok := r.in.(transporter)
	if !ok {
		return runErr
	}
	from, out := t.ended(media, r.stderr)
	if out.To != "" {
		r.transportChanged(from, out.To, out.Reason)
	}
	switch {
	case out.AtOnce:
		return fmt.Errorf("%w: %s", errTransport, out.Reason)
	case out.Reason != "" && runErr != nil:
		return fmt.Errorf("%s: %w", out.Reason, runErr)
	}
	return runErr
}

func (r *runner) transportChanged(from, to source.Transport, why string) {
	r.log.Warn().Str("from", string(from)).Str("to", string(to)).Msg("rtsp transport: " + why)
	r.j.event(Event{Type: "transport", Message: fmt.Sprintf("%s → %s: %s", from, to, why)})
}
