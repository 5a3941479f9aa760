package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/ingest"
	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/ladder"
)

// loadBindings reads the ingest bindings file, when one is set, and checks that the
// daemon listens for some protocol of each binding.
func (c Config) loadBindings(ladders *ladder.Store) (*ingest.Bindings, error) {
	if c.IngestBindings == "" {
		return nil, nil
	}
	exists := func(name string) error { _, err := ladders.Get(name); return err }
	b, err := ingest.LoadBindings(c.IngestBindings, os.LookupEnv, exists)
	if err != nil {
		return nil, err
	}
	on := map[ingest.Protocol]bool{ingest.RTMP: c.IngestRTMPListen != "" || c.IngestRTMPSListen != "", ingest.SRT: c.IngestSRTListen != ""}
	var errs []error
	for _, bd := range b.List {
		if !(on[ingest.RTMP] && bd.Allows(ingest.RTMP) || on[ingest.SRT] && bd.Allows(ingest.SRT)) {
			errs = append(errs, fmt.Errorf("%s:%d: %s: no ingest listener for it: %w", b.File, bd.Line, bd.ID, ingest.ErrOff))
		}
	}
	return b, errors.Join(errs...)
}

// binder creates the push job of a bound stream key at its first publish
// (ingest.Binder).
type binder struct {
	jobs     *job.Manager
	bindings *ingest.Bindings
	log      zerolog.Logger
	mu       sync.Mutex // one creation at a time: two publishers of one key make one job
}

// Bind implements ingest.Binder.
func (d *binder) Bind(h ingest.Hash, p ingest.Protocol) error {
	b := d.bindings.Find(h)
	if b == nil || !b.Allows(p) {
		return ingest.ErrNotBound
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if j, err := d.jobs.Get(b.ID); err == nil {
		switch v := j.View(); {
		case v.Ingest == nil:
			return fmt.Errorf("%s:%d: job %q exists and is not a push job", d.bindings.File, b.Line, b.ID)
		case v.State.Ended():
			return fmt.Errorf("%s:%d: job %q has ended (%s): delete it (DELETE /v1/jobs/%s) for the next publish to create it again", d.bindings.File, b.Line, b.ID, v.State, b.ID)
		}
		return nil // created meanwhile: the hub finds its stream
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := job.Request{Source: b.Source(), Ladder: b.Ladder, ID: b.ID, SRTPassphrase: b.SRTPassphrase}
	if _, err := d.jobs.CreateBound(ctx, req, b.Hash); err != nil {
		return fmt.Errorf("%s:%d: create job %q: %w", d.bindings.File, b.Line, b.ID, err)
	}
	d.log.Info().Str("job", b.ID).Str("ladder", b.Ladder).Str("protocol", string(p)).Msg("push job created by the first publish of its bound stream key")
	return nil
}

// sync gives the bound jobs that exist (restored) their key from the file: a key
// changed there (leaked, replaced) is refused from this start on.
func (d *binder) sync() {
	for _, b := range d.bindings.List {
		changed, err := d.jobs.BindKey(b.ID, b.Hash)
		switch {
		case errors.Is(err, job.ErrNotFound):
		case err != nil:
			d.log.Warn().Err(err).Str("job", b.ID).Msgf("%s:%d: the binding's job keeps its key", d.bindings.File, b.Line)
		case changed:
			d.log.Info().Str("job", b.ID).Msgf("%s:%d: the job's stream key is the file's", d.bindings.File, b.Line)
		}
	}
}
