package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/backoff"
)

// HTTPConfig is how an HTTP publisher reaches its origin. Zero fields take defaults.
type HTTPConfig struct {
	Base     *url.URL     // each job's folder is put under Base/<job id>/
	Client   *http.Client // default: a client with Timeout per request
	Workers  int          // uploads at once per job (4)
	Timeout  time.Duration
	Observer Observer
	// RetryMin and RetryMax bound the wait between rounds that failed (250 ms, 10 s).
	RetryMin, RetryMax time.Duration
}

// HTTP publishes to an origin that takes PUT and DELETE, such as nginx with
// `dav_methods PUT DELETE; create_full_put_path on;`.
type HTTP struct {
	cfg    HTTPConfig
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	jobs map[string]*queue
}

// NewHTTP returns the publisher of cfg.
func NewHTTP(cfg HTTPConfig) *HTTP {
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{
			Timeout:   cfg.Timeout,
			Transport: &http.Transport{MaxIdleConnsPerHost: 4 * cfg.Workers, IdleConnTimeout: time.Minute},
		}
	}
	if cfg.Observer == nil {
		cfg.Observer = noObserver{}
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 250 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 10 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &HTTP{cfg: cfg, ctx: ctx, cancel: cancel, jobs: map[string]*queue{}}
}

// Job implements Publisher.
func (h *HTTP) Job(id, dir string, log zerolog.Logger) Job {
	h.mu.Lock()
	defer h.mu.Unlock()
	q := h.jobs[id]
	if q == nil {
		q = &queue{h: h, id: id, have: map[string]bool{}}
		h.jobs[id] = q
	}
	q.mu.Lock()
	q.dir, q.log = dir, log.With().Str("publish", h.cfg.Base.Redacted()).Logger()
	q.mu.Unlock()
	return q
}

// Close implements Publisher: it waits up to flush for every job's deliveries to end,
// then stops them, and logs, per job, what was left undelivered.
func (h *HTTP) Close(flush time.Duration) {
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

// url returns where the file at rel (slash-separated) of job id goes.
func (h *HTTP) url(id, rel string) string {
	u := *h.cfg.Base
	u.Path = path.Join(u.Path, id, rel)
	u.RawPath = ""
	return u.String()
}

// queue is the delivery of one job: the newest version of each manifest not yet on
// the origin (in the order first written: media playlists, then the master, then the
// MPD), the files deleted locally not yet deleted there, and what is on the origin.
type queue struct {
	h  *HTTP
	id string

	mu        sync.Mutex
	dir       string
	log       zerolog.Logger
	seq       uint64 // counts Manifest calls
	manifests []*manifestUpload
	deletes   []deletion
	have      map[string]bool // uploaded by this daemon and not deleted since
	running   bool            // a goroutine delivers
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
	for _, rel := range rels {
		q.deletes = append(q.deletes, deletion{rel: rel, seq: q.seq})
	}
	q.kick()
}

// kick reports the queue's depth and starts its goroutine unless it runs. Call it with
// q.mu held.
func (q *queue) kick() {
	q.report()
	if q.running || q.h.ctx.Err() != nil {
		return
	}
	q.running = true
	q.h.wg.Add(1)
	go q.loop()
}

// report tells the observer how the number of things waiting changed: the manifests,
// the files they need that are not on the origin, and the deletes. Call it with q.mu
// held.
func (q *queue) report() {
	depth := len(q.manifests) + len(q.deletes) + len(q.needs())
	q.h.cfg.Observer.Pending(depth - q.depth)
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
func (q *queue) loop() {
	defer q.h.wg.Done()
	bo := &backoff.Backoff{Min: q.h.cfg.RetryMin, Max: q.h.cfg.RetryMax, Jitter: 0.2}
	failures := 0
	for {
		q.mu.Lock()
		if len(q.manifests) == 0 && len(q.deletes) == 0 || q.h.ctx.Err() != nil {
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
		case <-q.h.ctx.Done():
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
	errs := make([]error, q.h.cfg.Workers)
	var wg sync.WaitGroup
	for w := range q.h.cfg.Workers {
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
		q.h.cfg.Observer.Failed("put")
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
	req, err := http.NewRequestWithContext(q.h.ctx, http.MethodPut, q.h.url(q.id, rel), body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", contentType(rel))
	began := time.Now()
	if err := q.do(req); err != nil {
		q.h.cfg.Observer.Failed("put")
		return err
	}
	q.h.cfg.Observer.Uploaded(kind, time.Since(began))
	return nil
}

// delete deletes rel on the origin; a file already gone is deleted.
func (q *queue) delete(rel string) error {
	req, err := http.NewRequestWithContext(q.h.ctx, http.MethodDelete, q.h.url(q.id, rel), nil)
	if err != nil {
		return err
	}
	if err := q.do(req); err != nil && !errors.Is(err, errNotFound) {
		q.h.cfg.Observer.Failed("delete")
		return err
	}
	return nil
}

var errNotFound = errors.New("not found")

// do sends req and fails unless the origin answers 2xx.
func (q *queue) do(req *http.Request) error {
	res, err := q.h.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
		return nil
	case res.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s %s: %s: %w", req.Method, req.URL.Redacted(), res.Status, errNotFound)
	}
	return fmt.Errorf("%s %s: %s", req.Method, req.URL.Redacted(), res.Status)
}

// contentType is the media type of a served file, by its extension.
func contentType(rel string) string {
	switch path.Ext(rel) {
	case ".m3u8":
		return "application/vnd.apple.mpegurl"
	case ".mpd":
		return "application/dash+xml"
	case ".m4s":
		return "video/iso.segment"
	case ".mp4":
		return "video/mp4"
	}
	return "application/octet-stream"
}
