// Package publish delivers the served files of jobs (internal/manifest's layout) to
// where viewers fetch them: the output folder itself (fs, the default: nothing to do),
// an HTTP origin that takes PUT and DELETE (nginx with dav_methods, any WebDAV or PUT
// ingest), or a bucket of an S3-compatible store (AWS, Ceph RGW, Garage, SeaweedFS,
// MinIO...). The two remote kinds are one publisher (Remote, remote.go) over a store
// (http.go, s3.go): the same order, retries and metrics.
//
// ffmpeg always writes to the local output folder, which is then scratch; the job
// tells its Job of every manifest it writes, with the files that manifest names, and
// of every file it deletes. A remote publisher uploads a manifest only once every file
// it names is on the origin, and deletes a file only once every manifest that may have
// named it has been replaced there: a manifest on the origin never names a file that is
// not there. ffmpeg's own HTTP output is not used: it exits 0 when every PUT failed and
// never sends DELETE.
package publish

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Publisher delivers the files of every job of the daemon. Its methods are safe for
// concurrent use.
type Publisher interface {
	// Job returns the delivery of the job id, whose folder (manifest's layout) is dir.
	// Calls with the same id return the same delivery.
	Job(id, dir string, log zerolog.Logger) Job
	// Close stops delivering, after trying for at most flush to deliver what is pending.
	Close(flush time.Duration)
}

// Job is the delivery of one job's files. Paths are relative to the job folder, with
// slashes ("720p/index.m3u8"). Its methods return at once: delivery runs behind them.
type Job interface {
	// Manifest hands over a manifest just written atomically in the job folder (data:
	// its whole content; nil: the manifest was removed), with what lists the paths of
	// the files it names (segments, init segments, media playlists; nil: none). names
	// is called, if at all, before Manifest returns: listing them costs an allocation
	// per segment, which a publisher that only serves the folder never pays.
	Manifest(path string, data []byte, names func() []string)
	// Removed hands over files the job deleted from its folder (segments and init
	// segments that left the window).
	Removed(paths ...string)
	// Known tells the delivery which files are at the origin already, put by an
	// earlier box or run of the job (its restored index names them): they are never put
	// again, and are deleted there once they leave the window.
	Known(paths ...string)
	// Fetch reads a file of the job at the origin (fs.ErrNotExist: none there, or
	// nothing is published but the folder).
	Fetch(ctx context.Context, path string) ([]byte, error)
	// Close ends the delivery here, when the job moves to another box: it delivers
	// what is pending for at most flush, then drops the rest. When it returns nothing
	// of the job is in flight, and later calls deliver nothing: a box the job left never
	// overwrites its new box's manifests. The next Publisher.Job of the id starts anew.
	Close(flush time.Duration)
	// Purge ends the delivery (nothing more is delivered) and deletes every file of
	// the job at the origin, retrying until ctx ends.
	Purge(ctx context.Context) error
}

// Observer receives the publisher's measurements. Its methods must be fast and safe for
// concurrent use.
type Observer interface {
	// Uploaded reports one successful PUT of a file of kind (KindSegment, KindManifest)
	// and how long it took.
	Uploaded(kind string, took time.Duration)
	// Failed reports one failed request (op: "put" or "delete").
	Failed(op string)
	// Pending adds delta to the number of uploads and deletes waiting, all jobs together.
	Pending(delta int)
}

// The kinds of file Observer.Uploaded reports.
const (
	KindSegment  = "segment" // media and init segments
	KindManifest = "manifest"
)

// Config is the daemon's publishing: --publish and the --s3-* settings.
type Config struct {
	// Spec is "" or "fs" (the output folder, nothing to deliver), an http:// or
	// https:// URL under which each job's folder is put as <url>/<job id>/, or
	// s3://bucket/prefix, under which it is put as <prefix>/<job id>/.
	Spec     string
	S3       S3Options
	Observer Observer
}

// Parse returns the publisher that c names; it checks the settings, reaching nothing.
func Parse(c Config) (Publisher, error) {
	u, err := origin(c.Spec)
	switch {
	case err != nil || u == nil:
		return FS{}, err
	case u.Scheme == "s3":
		return NewS3(S3Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/"), S3Options: c.S3, Options: Options{Observer: c.Observer}})
	}
	return NewHTTP(HTTPConfig{Base: u, Options: Options{Observer: c.Observer}}), nil
}

// Validate reports what is wrong with c, reaching nothing.
func (c Config) Validate() error {
	p, err := Parse(c)
	if p != nil {
		p.Close(0)
	}
	return err
}

// origin checks spec (see Config) and returns its URL; nil for fs.
func origin(spec string) (*url.URL, error) {
	if spec == "" || spec == "fs" {
		return nil, nil
	}
	u, err := url.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("'publish' %q: %w", spec, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "s3":
		return nil, fmt.Errorf("'publish' %q: want fs, http://host/path, https://host/path or s3://bucket/prefix", u.Redacted())
	case u.Scheme == "s3" && u.Host == "":
		return nil, fmt.Errorf("'publish' %q: no bucket: want s3://bucket/prefix (the store's address is --s3-endpoint)", u.Redacted())
	case u.Scheme == "s3" && (u.User != nil || u.Port() != ""):
		return nil, fmt.Errorf("'publish' %q: want s3://bucket/prefix: the store's address is --s3-endpoint, its credentials AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", u.Redacted())
	case u.Host == "":
		return nil, fmt.Errorf("'publish' %q: no host", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("'publish' %q: no query or fragment allowed", u.Redacted())
	}
	return u, nil
}

// ErrNotLocal is wrapped when a file a manifest names is not in the job folder.
var ErrNotLocal = errors.New("named file is not in the job folder")

// FS is the publisher of the output folder: the job's own files are what is served.
type FS struct{}

// Job implements Publisher.
func (FS) Job(string, string, zerolog.Logger) Job { return noJob{} }

// Close implements Publisher.
func (FS) Close(time.Duration) {}

type noJob struct{}

func (noJob) Manifest(string, []byte, func() []string) {}
func (noJob) Removed(...string)                        {}
func (noJob) Known(...string)                          {}
func (noJob) Close(time.Duration)                      {}
func (noJob) Fetch(context.Context, string) ([]byte, error) {
	return nil, fs.ErrNotExist
}
func (noJob) Purge(context.Context) error { return nil }

// noObserver is the Observer of a publisher given none.
type noObserver struct{}

func (noObserver) Uploaded(string, time.Duration) {}
func (noObserver) Failed(string)                  {}
func (noObserver) Pending(int)                    {}
