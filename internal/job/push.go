package job

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/ingest"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/source"
)

// IngestView is where an encoder publishes a push job, as the API shows it: the URLs,
// the stream key only in the answers that make one (creation, rotation), and the
// publisher while one is connected.
type IngestView struct {
	ingest.Endpoints
	Publisher *ingest.Publisher `json:"publisher,omitempty"`
}

// pushInput is a push source: an encoder publishes to the daemon's ingest hub, whose
// stream for the job hands each run of ffmpeg a pipe of MPEG-TS. It belongs to one
// job; its stream is set when the job joins the hub (Manager.addStream).
type pushInput struct {
	src     source.Source
	ffprobe string
	stream  *ingest.Stream // nil until the job has joined the hub
}

// probeSpan is how much of a new publisher's media the probe reads: enough for
// ffprobe to tell the frame rate (from the SPS's timing, or a few frames' timestamps:
// 5 fps and 29.97 fps are told from 0.5 s) and the audio, short enough not to delay
// the start. The run that follows gets those frames again, from the GOP cache. A
// second instead made the first segment come a second later.
const probeSpan = 500 * time.Millisecond

// Probe reads the publisher's first GOP from the hub: no second connection to the
// encoder. Without a publisher it fails at once (ingest.ErrNoPublisher).
func (in *pushInput) Probe(ctx context.Context) (ladder.SourceInfo, error) {
	if in.stream == nil || !in.stream.Ready() {
		return ladder.SourceInfo{}, ingest.ErrNoPublisher
	}
	f, err := os.CreateTemp("", "transcoderd-push-*.ts")
	if err != nil {
		return ladder.SourceInfo{}, fmt.Errorf("probe the publisher: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := in.stream.WriteGOP(ctx, f, probeSpan); err != nil {
		return ladder.SourceInfo{}, fmt.Errorf("probe the publisher: %w", err)
	}
	return ffmpeg.Probe(ctx, in.ffprobe, f.Name(), source.File)
}

// Open hands the run the pipe the hub feeds from the publisher's last keyframe.
func (in *pushInput) Open(context.Context) (Feed, error) {
	if in.stream == nil {
		return Feed{}, ingest.ErrNoPublisher
	}
	r, err := in.stream.Open()
	if err != nil {
		return Feed{}, fmt.Errorf("ingest: %w", err)
	}
	return Feed{Source: in.src, Files: []*os.File{r}}, nil
}

func (in *pushInput) ready() bool { return in.stream != nil && in.stream.Ready() }

func (in *pushInput) wait(ctx context.Context) error {
	if in.stream == nil {
		return errors.New("the job is not on the ingest hub")
	}
	return in.stream.Wait(ctx)
}

// publisherWaiter is an Input fed by an encoder that publishes to the daemon
// (pushInput): the runner waits for one, in state waiting, before it probes and before
// each run of ffmpeg.
type publisherWaiter interface {
	ready() bool
	wait(ctx context.Context) error
}

// awaitPublisher waits, in state waiting, until a publisher feeds the job; it returns
// at once for other inputs, and false when the job ended while it waited.
func (r *runner) awaitPublisher(ctx context.Context) bool {
	w, ok := r.in.(publisherWaiter)
	if !ok || w.ready() {
		return true
	}
	r.j.update(func(v *View) { v.Waiting = "publisher" })
	r.j.setState(Waiting)
	err := w.wait(ctx)
	r.j.update(func(v *View) { v.Waiting = "" })
	if err != nil {
		return false
	}
	r.j.setState(Starting)
	return true
}

// pushed reports whether the job's source is a publisher: a run that ended well means
// it went, and the next run waits for it at once, without backoff.
func (r *runner) pushed() bool {
	_, ok := r.in.(publisherWaiter)
	return ok
}

// pushProtocols is what the hub lets publish to a push source.
func pushProtocols(src source.Source) []ingest.Protocol {
	var out []ingest.Protocol
	for _, p := range source.PushProtocols(src.Display) {
		out = append(out, ingest.Protocol(p))
	}
	return out
}

// checkPush refuses a push job the hub cannot take: no listener for any protocol the
// source allows.
func (m *Manager) checkPush(src source.Source) error {
	for _, p := range pushProtocols(src) {
		if m.cfg.Ingest.Allows(p) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s: %w", ErrInvalid, src.Display, ingest.ErrOff)
}

// checkPushRequest checks what a request asks of the ingest hub: a push source the hub
// can take, and an SRT passphrase only for a push source that allows SRT, of the
// length SRT requires.
func (m *Manager) checkPushRequest(src source.Source, passphrase string) error {
	if src.Kind != source.Push {
		if passphrase != "" {
			return fmt.Errorf("%w: srt_passphrase is for push sources", ErrInvalid)
		}
		return nil
	}
	if err := m.checkPush(src); err != nil {
		return err
	}
	srtAllowed := false
	for _, p := range pushProtocols(src) {
		srtAllowed = srtAllowed || p == ingest.SRT
	}
	switch {
	case passphrase == "":
	case !srtAllowed:
		return fmt.Errorf("%w: srt_passphrase: %s does not allow srt", ErrInvalid, src.Display)
	case ingest.CheckPassphrase(passphrase) != nil:
		return fmt.Errorf("%w: srt_passphrase %v", ErrInvalid, ingest.CheckPassphrase(passphrase))
	}
	return nil
}

// addStream puts j on the ingest hub with the key whose hash is hash: its publishers'
// events become the job's, and its input reads from the stream.
func (m *Manager) addStream(j *Job, hash ingest.Hash) error {
	st, err := m.cfg.Ingest.Add(j.id, hash, pushProtocols(j.src))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	st.SetPassphrase(j.req.SRTPassphrase)
	st.OnEvent(func(e ingest.Event) {
		j.log.Info().Str("event", e.Type).Msg(e.Message)
		j.event(Event{Type: e.Type, Message: e.Message})
	})
	j.mu.Lock()
	j.hub, j.stream, j.keyHash = m.cfg.Ingest, st, hash
	j.mu.Unlock()
	if in, ok := j.in.(*pushInput); ok {
		in.stream = st
	}
	return nil
}

// leaveHub takes j off the ingest hub, once its runner has returned: its key is
// refused from then on.
func (m *Manager) leaveHub(j *Job) {
	j.mu.Lock()
	st := j.stream
	j.mu.Unlock()
	if st != nil {
		m.cfg.Ingest.Remove(j.id)
	}
}

// RotateKey gives push job id a new stream key, shown in the view it returns and
// nowhere else: publishers must present it from now on; the running session may
// finish.
func (m *Manager) RotateKey(id string) (View, error) {
	key, hash, err := ingest.NewKey()
	if err != nil {
		return View{}, err
	}
	j, err := m.setKey(id, hash)
	if err != nil {
		return View{}, err
	}
	j.log.Info().Msg("stream key rotated")
	j.event(Event{Type: "rotate", Message: "stream key rotated: the old key is refused from now on"})
	return j.viewWithKey(key), nil
}

// CreateBound is Create of a push job whose stream key is kept elsewhere (an ingest
// bindings file): the job's key is the one whose hash is hash, and none is made.
func (m *Manager) CreateBound(ctx context.Context, req Request, hash ingest.Hash) (*Job, error) {
	return m.create(ctx, req, &hash)
}

// BindKey gives push job id the stream key whose hash is hash, kept elsewhere (an
// ingest bindings file), when it has another; it reports whether it had.
func (m *Manager) BindKey(id string, hash ingest.Hash) (bool, error) {
	j, err := m.Get(id)
	if err != nil {
		return false, err
	}
	j.mu.Lock()
	same := j.keyHash == hash // not secret: both are the daemon's own
	j.mu.Unlock()
	if same {
		return false, nil
	}
	if _, err := m.setKey(id, hash); err != nil {
		return false, err
	}
	j.log.Info().Msg("stream key set from the ingest bindings file")
	j.event(Event{Type: "rotate", Message: "stream key set from the ingest bindings file: the old key is refused from now on"})
	return true, nil
}

// setKey makes hash the key of running push job id, and stores it.
func (m *Manager) setKey(id string, hash ingest.Hash) (*Job, error) {
	j, err := m.Get(id)
	if err != nil {
		return nil, err
	}
	j.mu.Lock()
	st := j.stream
	if st == nil || j.view.State.Ended() {
		j.mu.Unlock()
		return nil, fmt.Errorf("%w: job %q is not a running push job", ErrConflict, id)
	}
	// Together, so that two rotations at once leave the stream and the stored hash
	// with the same key (j.mu before the stream's lock, as everywhere).
	st.SetKey(hash)
	j.keyHash = hash
	j.mu.Unlock()
	j.persist()
	return j, nil
}

// viewWithKey is the job's view with its stream key: only for the answers that make one.
func (j *Job) viewWithKey(key string) View {
	v := j.View()
	if v.Ingest != nil && key != "" {
		v.Ingest.Endpoints = j.hub.Endpoints(key, pushProtocols(j.src))
	}
	return v
}

// ingestView is what the API shows of a push job's ingest, without its key. j.mu is held.
func (j *Job) ingestViewLocked(hub *ingest.Hub) *IngestView {
	if j.stream == nil {
		return nil
	}
	e := hub.Endpoints("", pushProtocols(j.src))
	return &IngestView{Endpoints: e, Publisher: j.stream.Publisher()}
}

// joinHub puts a new push job on the ingest hub with a new key, which its creation
// answer shows (CreatedView), or with the key whose hash is bound (CreateBound), which
// no answer shows. m.mu is held.
func (m *Manager) joinHub(j *Job, bound *ingest.Hash) error {
	if bound != nil {
		return m.addStream(j, *bound)
	}
	key, hash, err := ingest.NewKey()
	if err != nil {
		return err
	}
	if err := m.addStream(j, hash); err != nil {
		return err
	}
	j.mu.Lock()
	j.newKey = key
	j.mu.Unlock()
	return nil
}

// rejoinHub puts a restored push job back on the ingest hub, with its stored key.
func (m *Manager) rejoinHub(j *Job, rec storedJob) error {
	if err := m.checkPush(j.src); err != nil {
		return err
	}
	hash, err := ingest.ParseHash(rec.KeyHash)
	if err != nil {
		return err
	}
	return m.addStream(j, hash)
}
