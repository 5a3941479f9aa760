package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"time"
)

// HTTPConfig is how an HTTP publisher reaches its origin. Zero fields take defaults.
type HTTPConfig struct {
	Base   *url.URL     // each job's folder is put under Base/<job id>/
	Client *http.Client // default: a client with Options.Timeout per request
	Options
}

// NewHTTP returns the publisher to an origin that takes PUT and DELETE, such as nginx
// with `dav_methods PUT DELETE; create_full_put_path on;`.
func NewHTTP(cfg HTTPConfig) *Remote {
	cfg.defaults()
	if cfg.Client == nil {
		cfg.Client = &http.Client{
			Timeout:   cfg.Timeout,
			Transport: &http.Transport{MaxIdleConnsPerHost: 4 * cfg.Workers, IdleConnTimeout: time.Minute},
		}
	}
	return newRemote(&httpStore{base: cfg.Base, client: cfg.Client}, cfg.Options)
}

// httpStore is an origin that takes PUT and DELETE.
type httpStore struct {
	base   *url.URL
	client *http.Client
}

func (s *httpStore) String() string { return s.base.Redacted() }

// url returns where the file at rel (slash-separated) of job id goes.
func (s *httpStore) url(id, rel string) string {
	u := *s.base
	u.Path = path.Join(u.Path, id, rel)
	if rel == "" {
		u.Path += "/" // a folder, as WebDAV names collections
	}
	u.RawPath = ""
	return u.String()
}

func (s *httpStore) put(ctx context.Context, id, rel string, body io.Reader, size int64, m meta) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, s.url(id, rel), body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", m.contentType)
	req.Header.Set("Cache-Control", m.cacheControl)
	return s.do(req)
}

func (s *httpStore) remove(ctx context.Context, id, rel string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, s.url(id, rel), nil)
	if err != nil {
		return err
	}
	if err := s.do(req); err != nil && !errors.Is(err, errNotFound) {
		return err
	}
	return nil
}

// get reads a file with GET at the URL it was put at (nginx's dav location serves
// GET too).
func (s *httpStore) get(ctx context.Context, id, rel string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url(id, rel), nil)
	if err != nil {
		return nil, err
	}
	res, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", req.URL.Redacted(), err)
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("GET %s: %w", req.URL.Redacted(), fs.ErrNotExist)
	case res.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET %s: %w", req.URL.Redacted(), statusError(res.StatusCode))
	}
	return io.ReadAll(io.LimitReader(res.Body, maxFetch))
}

// maxFetch bounds what Fetch reads: init segments, a few KB.
const maxFetch = 16 << 20

// removeAll deletes the job's folder, as WebDAV deletes a collection (nginx's
// dav_methods DELETE does). An origin that has no such folder, or cannot delete one
// (405, 501: a plain PUT origin), is left as it is: the files were deleted one by one.
func (s *httpStore) removeAll(ctx context.Context, id string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, s.url(id, ""), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Depth", "infinity")
	err = s.do(req)
	var st statusError
	if err == nil || errors.Is(err, errNotFound) || errors.As(err, &st) && (st == http.StatusMethodNotAllowed || st == http.StatusNotImplemented) {
		return nil
	}
	return err
}

// check has nothing to check: an HTTP origin has no bucket, and a PUT would leave a file.
func (s *httpStore) check(context.Context) error { return nil }

var errNotFound = errors.New("not found")

// statusError is the status of an answer that is not 2xx.
type statusError int

func (e statusError) Error() string { return fmt.Sprintf("%d %s", int(e), http.StatusText(int(e))) }

// do sends req and fails unless the origin answers 2xx.
func (s *httpStore) do(req *http.Request) error {
	res, err := s.client.Do(req)
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
	return fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), statusError(res.StatusCode))
}
