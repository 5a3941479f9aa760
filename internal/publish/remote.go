package publish

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/backoff"
)

// Options are the delivery settings every remote publisher has, whatever its store.
// Zero fields take defaults.
type Options struct {
	Workers  int           // uploads at once per job (4)
	Timeout  time.Duration // per request (30 s)
	Observer Observer
	// RetryMin and RetryMax bound the wait between rounds that failed (250 ms, 10 s).
	RetryMin, RetryMax time.Duration
}

func (o *Options) defaults() {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Observer == nil {
		o.Observer = noObserver{}
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 250 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 10 * time.Second
	}
}

// store is where a Remote publisher's files go: an HTTP origin (http.go) or an S3
// bucket (s3.go). A file is named by its job's id and its path in the job folder.
type store interface {
	// put stores size bytes of body as the file rel of job id.
	put(ctx context.Context, id, rel string, body io.Reader, size int64, m meta) error
	// remove deletes the file rel of job id; a file already gone is removed.
	remove(ctx context.Context, id, rel string) error
	// get reads the file rel of job id (fs.ErrNotExist: there is none).
	get(ctx context.Context, id, rel string) ([]byte, error)
	// removeAll deletes whatever is left under the job's folder (or prefix).
	removeAll(ctx context.Context, id string) error
	// check tells, at start-up, whether the store takes files (ErrUnreachable: it did
	// not answer).
	check(ctx context.Context) error
	// String names the store in logs, without credentials.
	String() string
}

// ErrUnreachable is wrapped by Remote.Check when the store did not answer at all.
var ErrUnreachable = errors.New("not reachable")

// meta is what a stored file is served with.
type meta struct{ contentType, cacheControl string }

// Remote publishes to a store: segments, then the manifests naming them, then deletes
// of what left the window, each job in its own order, with retries.
type Remote struct {
	st     store
	opt    Options
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	jobs map[string]*queue
}

func newRemote(st store, opt Options) *Remote {
	opt.defaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Remote{st: st, opt: opt, ctx: ctx, cancel: cancel, jobs: map[string]*queue{}}
}

// String names the store, without credentials.
func (h *Remote) String() string { return h.st.String() }

// Check tells whether the store takes files: for an S3 bucket, that it exists and the
// credentials may use it. An error wrapping ErrUnreachable is the store not answering,
// which retries may outlast; any other is a setting to fix.
func (h *Remote) Check(ctx context.Context) error { return h.st.check(ctx) }

// Job implements Publisher.
func (h *Remote) Job(id, dir string, log zerolog.Logger) Job {
	h.mu.Lock()
	defer h.mu.Unlock()
	q := h.jobs[id]
	if q == nil {
		ctx, cancel := context.WithCancel(h.ctx)
		q = &queue{h: h, id: id, ctx: ctx, cancel: cancel, have: map[string]bool{}}
		h.jobs[id] = q
	}
	q.mu.Lock()
	q.dir, q.log = dir, log.With().Str("publish", h.st.String()).Logger()
	q.mu.Unlock()
	return q
}

// forget drops q, closed, so that the next Job of its id starts a new delivery.
func (h *Remote) forget(q *queue) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.jobs[q.id] == q {
		delete(h.jobs, q.id)
	}
}

// Close implements Publisher: it waits up to flush for every job's deliveries to end,
// then stops them, and logs, per job, what was left undelivered.
func (h *Remote) Close(flush time.Duration) {
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(flush):
	}
	h.cancel()
	h.wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, q := range h.jobs {
		q.mu.Lock()
		if n := len(q.manifests) + len(q.deletes); n > 0 {
			q.log.Error().Int("manifests", len(q.manifests)).Int("deletes", len(q.deletes)).Msg("publish: stopped with files not delivered to the origin")
		}
		q.mu.Unlock()
	}
}

// queue is the delivery of one job: the newest version of each manifest not yet on
// the origin (in the order first written: media playlists, then the master, then the
// MPD), the files deleted locally not yet deleted there, and what is on the origin.
type queue struct {
	h      *Remote
	id     string
	ctx    context.Context // ends when the job's delivery is closed, or the publisher
	cancel context.CancelFunc

	mu        sync.Mutex
	dir       string
	log       zerolog.Logger
	seq       uint64 // counts Manifest calls
	manifests []*manifestUpload
	deletes   []deletion
	have      map[string]bool // on the origin: uploaded by this daemon, or Known, and not deleted since
	running   bool            // a goroutine delivers
	idle      chan struct{}   // closed when that goroutine ends
	closed    bool            // Close or Purge: nothing more is delivered
	depth     int             // reported to Observer.Pending
}

type manifestUpload struct {
	rel   string
	data  []byte // nil: delete it
	names []string
	seq   uint64
}

// deletion is a file deleted locally after the seq-th Manifest call: every manifest
// that may name it on the origin is one of those calls' or older.
type deletion struct {
	rel string
	seq uint64
}

// Manifest implements Job.
func (q *queue) Manifest(rel string, data []byte, list func() []string) {
	var names []string
	if list != nil {
		names = list()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.seq++
	m := &manifestUpload{rel: rel, data: data, names: names, seq: q.seq}
	if i := slices.IndexFunc(q.manifests, func(p *manifestUpload) bool { return p.rel == rel }); i >= 0 {
		q.manifests[i] = m // only the newest version matters; it keeps its place in the order
	} else {
		q.manifests = append(q.manifests, m)
	}
	q.kick()
}

// Removed implements Job.
func (q *queue) Removed(rels ...string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	for _, rel := range rels {
		q.deletes = append(q.deletes, deletion{rel: rel, seq: q.seq})
	}
	q.kick()
}

// Known implements Job.
func (q *queue) Known(rels ...string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, rel := range rels {
		q.have[rel] = true
	}
	q.report()
}

// Fetch implements Job.
func (q *queue) Fetch(ctx context.Context, rel string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, q.h.opt.Timeout)
	defer cancel()
	return q.h.st.get(ctx, q.id, rel)
}

// Close implements Job: it waits up to flush for what is pending, then drops the rest
// and cancels the requests in flight; when it returns, no request of this delivery is
// in flight or will be sent.
func (q *queue) Close(flush time.Duration) {
	if !q.waitIdle(flush) {
		q.mu.Lock()
		q.log.Warn().Int("manifests", len(q.manifests)).Int("deletes", len(q.deletes)).Dur("flush", flush).
			Msg("publish: the job left this box with files not delivered; they are dropped, never delivered late")
		q.mu.Unlock()
	}
	q.stop()
}

// stop drops what is pending, cancels what is in flight and waits for it, and makes
// the publisher forget q.
func (q *queue) stop() {
	q.mu.Lock()
	q.closed = true
	q.manifests, q.deletes = nil, nil
	q.report()
	q.mu.Unlock()
	q.cancel()
	q.waitIdle(-1)
	q.h.forget(q)
}

// waitIdle waits up to d (forever when d < 0) until no goroutine delivers, and reports
// whether none does.
func (q *queue) waitIdle(d time.Duration) bool {
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	for {
		q.mu.Lock()
		running, idle := q.running, q.idle
		q.mu.Unlock()
		if !running {
			return true
		}
		select {
		case <-idle:
		case <-timeout:
			return false
		}
	}
}

// Purge implements Job: it stops the delivery (see Close, with nothing flushed), then
// deletes the files it put and whatever else the store holds under the job's folder,
// retrying until ctx ends.
func (q *queue) Purge(ctx context.Context) error {
	q.mu.Lock()
	var rels []string
	for rel := range q.have {
		rels = append(rels, rel)
	}
	for _, d := range q.deletes {
		rels = append(rels, d.rel)
	}
	q.mu.Unlock()
	// Manifests first: a player then finds no stream, never a stream without segments.
	manifestsFirst := func(rel string) int {
		if ext := path.Ext(rel); ext == ".m3u8" || ext == ".mpd" {
			return 0
		}
		return 1
	}
	slices.SortFunc(rels, func(a, b string) int { return cmp.Compare(manifestsFirst(a), manifestsFirst(b)) })
	q.stop()
	bo := &backoff.Backoff{Min: q.h.opt.RetryMin, Max: q.h.opt.RetryMax, Jitter: 0.2}
	for {
		err := q.purge(ctx, rels)
		if err == nil {
			q.log.Info().Int("files", len(rels)).Msg("publish: the job's files deleted at the origin")
			return nil
		}
		wait := bo.Next(0)
		q.log.Warn().Err(err).Dur("retry_in", wait).Msg("publish: purge at the origin failed")
		select {
		case <-ctx.Done():
			return fmt.Errorf("purge at %s: %w", q.h.st, err)
		case <-q.h.ctx.Done():
			return fmt.Errorf("purge at %s: publisher closed: %w", q.h.st, err)
		case <-time.After(wait):
		}
	}
}

// purge deletes the files at rels (again, after a try that failed: a delete is
// idempotent), then whatever is left under the job's folder.
func (q *queue) purge(ctx context.Context, rels []string) error {
	for _, rel := range rels {
		if err := q.h.st.remove(ctx, q.id, rel); err != nil {
			q.h.opt.Observer.Failed("delete")
			return err
		}
	}
	if err := q.h.st.removeAll(ctx, q.id); err != nil {
		q.h.opt.Observer.Failed("delete")
		return err
	}
	return nil
}

// kick reports the queue's depth and starts its goroutine unless it runs. Call it with
// q.mu held.
func (q *queue) kick() {
	q.report()
	if q.running || q.closed || q.ctx.Err() != nil {
		return
	}
	q.running, q.idle = true, make(chan struct{})
	q.h.wg.Add(1)
	go q.loop(q.idle)
}

// report tells the observer how the number of things waiting changed: the manifests,
// the files they need that are not on the origin, and the deletes. Call it with q.mu
// held.
func (q *queue) report() {
	depth := len(q.manifests) + len(q.deletes) + len(q.needs())
	q.h.opt.Observer.Pending(depth - q.depth)
	q.depth = depth
}

// needs lists the files that the waiting manifests name, which are neither on the
// origin nor a waiting manifest themselves. Call it with q.mu held.
func (q *queue) needs() []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range q.manifests {
		seen[m.rel] = true
	}
	for _, m := range q.manifests {
		for _, n := range m.names {
			if !q.have[n] && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// loop delivers until nothing waits, then ends; a round that failed is tried again
// after a backoff, for as long as the publisher is open.
func (q *queue) loop(idle chan struct{}) {
	defer q.h.wg.Done()
	defer close(idle)
	bo := &backoff.Backoff{Min: q.h.opt.RetryMin, Max: q.h.opt.RetryMax, Jitter: 0.2}
	failures := 0
	for {
		q.mu.Lock()
		if len(q.manifests) == 0 && len(q.deletes) == 0 || q.ctx.Err() != nil {
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		err := q.round()
		if err == nil {
			if failures > 0 {
				q.log.Info().Int("failed_rounds", failures).Msg("publish: the origin has caught up")
			}
			failures = 0
			bo.Reset()
			continue
		}
		failures++
		wait := bo.Next(0)
		q.mu.Lock()
		q.log.Warn().Err(err).Int("manifests_waiting", len(q.manifests)).Int("deletes_waiting", len(q.deletes)).
			Dur("retry_in", wait).Msg("publish: origin failed; the job goes on locally and the origin catches up")
		q.mu.Unlock()
		select {
		case <-q.ctx.Done():
		case <-time.After(wait):
		}
	}
}

// round uploads the files the waiting manifests need, then those manifests, in order,
// then the deletes no waiting manifest may still name. Manifests handed over during the
// round wait for the next.
func (q *queue) round() error {
	q.mu.Lock()
	needs, dir, waiting := q.needs(), q.dir, slices.Clone(q.manifests)
	q.mu.Unlock()
	if err := q.uploadAll(dir, needs); err != nil {
		return err
	}
	if err := q.putManifests(waiting); err != nil {
		return err
	}
	return q.deleteSafe()
}

// uploadAll puts the files at rels with the publisher's workers, and returns every
// failure.
func (q *queue) uploadAll(dir string, rels []string) error {
	work := make(chan string)
	errs := make([]error, q.h.opt.Workers)
	var wg sync.WaitGroup
	for w := range q.h.opt.Workers {
		wg.Go(func() {
			for rel := range work {
				if err := q.uploadFile(dir, rel); err != nil {
					errs[w] = errors.Join(errs[w], err)
				}
			}
		})
	}
	for _, rel := range rels {
		work <- rel
	}
	close(work)
	wg.Wait()
	return errors.Join(errs...)
}

// uploadFile puts the file at rel of the job folder dir.
func (q *queue) uploadFile(dir, rel string) error {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		q.h.opt.Observer.Failed("put")
		return fmt.Errorf("%w: %w", ErrNotLocal, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := q.put(rel, f, st.Size(), KindSegment); err != nil {
		return err
	}
	q.mu.Lock()
	q.have[rel] = true
	q.report()
	q.mu.Unlock()
	return nil
}

// putManifests puts (or deletes) the manifests waiting, whose named files were just
// uploaded, in order; it stops at the first failure. One that still names a file not
// on the origin (a manifest that was never delivered) fails the round.
func (q *queue) putManifests(waiting []*manifestUpload) error {
	var blocked error
	for _, m := range waiting {
		q.mu.Lock()
		i := slices.IndexFunc(m.names, func(n string) bool { return !q.have[n] })
		q.mu.Unlock()
		if i >= 0 {
			blocked = fmt.Errorf("%s names %s, not on the origin", m.rel, m.names[i])
			continue
		}
		var err error
		if m.data == nil {
			err = q.delete(m.rel)
		} else {
			err = q.put(m.rel, bytes.NewReader(m.data), int64(len(m.data)), KindManifest)
		}
		if err != nil {
			return err
		}
		q.mu.Lock()
		q.have[m.rel] = m.data != nil
		if !q.have[m.rel] {
			delete(q.have, m.rel)
		}
		q.manifests = slices.DeleteFunc(q.manifests, func(p *manifestUpload) bool { return p == m })
		q.report()
		q.mu.Unlock()
	}
	return blocked
}

// deleteSafe deletes on the origin the files deleted locally that no manifest waiting
// to be replaced there may name: those deleted after every waiting manifest's version
// was written. A file named by a manifest still on the origin is never deleted.
func (q *queue) deleteSafe() error {
	q.mu.Lock()
	oldest := q.seq + 1
	for _, m := range q.manifests {
		oldest = min(oldest, m.seq)
	}
	var ready []deletion
	for _, d := range q.deletes {
		if d.seq < oldest {
			ready = append(ready, d)
		}
	}
	q.mu.Unlock()
	for _, d := range ready {
		if err := q.delete(d.rel); err != nil {
			return err
		}
		q.mu.Lock()
		delete(q.have, d.rel)
		q.deletes = slices.DeleteFunc(q.deletes, func(x deletion) bool { return x == d })
		q.report()
		q.mu.Unlock()
	}
	return nil
}

// put uploads body (size bytes) to rel, and reports it.
func (q *queue) put(rel string, body io.Reader, size int64, kind string) error {
	ctx, cancel := context.WithTimeout(q.ctx, q.h.opt.Timeout)
	defer cancel()
	began := time.Now()
	if err := q.h.st.put(ctx, q.id, rel, body, size, metaOf(rel)); err != nil {
		q.h.opt.Observer.Failed("put")
		return err
	}
	q.h.opt.Observer.Uploaded(kind, time.Since(began))
	return nil
}

// delete deletes rel on the origin; a file already gone is deleted.
func (q *queue) delete(rel string) error {
	ctx, cancel := context.WithTimeout(q.ctx, q.h.opt.Timeout)
	defer cancel()
	if err := q.h.st.remove(ctx, q.id, rel); err != nil {
		q.h.opt.Observer.Failed("delete")
		return err
	}
	return nil
}

// metaOf is what the file at rel is served with: its media type, by its extension,
// and how long caches may keep it, as scripts/nginx-origin.conf serves it: manifests
// change with every segment, segments never change once written (their names hold
// the run: manifest's layout).
func metaOf(rel string) meta {
	switch path.Ext(rel) {
	case ".m3u8":
		return meta{"application/vnd.apple.mpegurl", "no-cache"}
	case ".mpd":
		return meta{"application/dash+xml", "no-cache"}
	case ".m4s":
		return meta{"video/iso.segment", "public, max-age=86400, immutable"}
	case ".mp4":
		return meta{"video/mp4", "no-cache"}
	}
	return meta{"application/octet-stream", "no-cache"}
}
