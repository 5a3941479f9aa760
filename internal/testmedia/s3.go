package testmedia

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3 is an S3-protocol server on loopback: gofakes3 (an S3 API in Go, in memory) in
// this process, not AWS. Like Origin, the test can make it fail (503 SlowDown to every
// request), and it checks what it stores: every manifest put names only objects already
// in the bucket, and no object deleted is named by a manifest in the bucket.
type S3 struct {
	Endpoint string // http://127.0.0.1:port, what --s3-endpoint names
	Bucket   string // "live", created

	back *checkedBackend
	fail atomic.Bool
	mu   sync.Mutex
	sent map[string]http.Header // the headers of the last PUT of each path
}

// The fake's credentials; any pair is accepted.
const (
	S3AccessKey = "transcoderd-test"
	S3SecretKey = "transcoderd-test-secret"
)

// StartS3 runs the store until the test ends.
func StartS3(t testing.TB) *S3 {
	t.Helper()
	s := &S3{Bucket: "live", back: &checkedBackend{Backend: s3mem.New(), puts: map[string]int{}, seq: map[string]int{}}, sent: map[string]http.Header{}}
	if err := s.back.CreateBucket(s.Bucket); err != nil {
		t.Fatal(err)
	}
	h := gofakes3.New(s.back).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.fail.Load() {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>failing on purpose</Message></Error>`)
			return
		}
		if r.Method == http.MethodPut {
			s.mu.Lock()
			s.sent[r.URL.Path] = r.Header.Clone()
			s.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.Endpoint = srv.URL
	return s
}

// SetCredentials puts the fake's credentials in AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY until the test ends, where --publish s3:// reads them.
func (s *S3) SetCredentials(t testing.TB) {
	t.Setenv("AWS_ACCESS_KEY_ID", S3AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", S3SecretKey)
}

// Fail makes the store answer 503 to every request (true) or serve them again.
func (s *S3) Fail(on bool) { s.fail.Store(on) }

// Errors returns what the checks found wrong so far.
func (s *S3) Errors() []string {
	s.back.mu.Lock()
	defer s.back.mu.Unlock()
	return append([]string(nil), s.back.errs...)
}

// Puts returns how many objects with extension ext (".m4s") were stored.
func (s *S3) Puts(ext string) int {
	s.back.mu.Lock()
	defer s.back.mu.Unlock()
	return s.back.puts[ext]
}

// Object returns the content and metadata (Content-Type, Cache-Control...) of the
// object key; ok is false when there is none.
func (s *S3) Object(key string) (data []byte, meta map[string]string, ok bool) {
	o, err := s.back.GetObject(s.Bucket, key, nil)
	if err != nil {
		return nil, nil, false
	}
	defer o.Contents.Close()
	data, err = io.ReadAll(o.Contents)
	return data, o.Metadata, err == nil
}

// Sent returns the headers of the last PUT of the object key (path-style requests):
// gofakes3 keeps Content-Type, not Cache-Control.
func (s *S3) Sent(key string) http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent["/"+s.Bucket+"/"+key]
}

// Put stores data as the object key, unchecked.
func (s *S3) Put(key string, data []byte) {
	_, _ = s.back.Backend.PutObject(s.Bucket, key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil)
}

// Keys lists the objects under prefix.
func (s *S3) Keys(prefix string) []string {
	l, err := s.back.ListBucket(s.Bucket, &gofakes3.Prefix{HasPrefix: true, Prefix: prefix}, gofakes3.ListBucketPage{})
	if err != nil {
		return nil
	}
	var keys []string
	for _, o := range l.Contents {
		keys = append(keys, o.Key)
	}
	return keys
}

// checkedBackend is s3mem's, checking each put and delete (the checks of Origin).
type checkedBackend struct {
	*s3mem.Backend
	mu   sync.Mutex // one put or delete at a time: each is checked against the others
	errs []string
	puts map[string]int
	seq  map[string]int // the media sequence of each media playlist last put
}

func (b *checkedBackend) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, cond *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	body, err := io.ReadAll(input)
	if err != nil {
		return gofakes3.PutObjectResult{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.puts[path.Ext(key)]++
	if isManifest(key) {
		names, err := ManifestFiles("/"+key, body)
		if err != nil {
			b.errs = append(b.errs, fmt.Sprintf("PUT %s: %v", key, err))
		}
		for _, n := range names {
			if _, err := b.HeadObject(bucket, strings.TrimPrefix(n, "/")); err != nil {
				b.errs = append(b.errs, fmt.Sprintf("PUT %s names %s, not in the bucket", key, n))
			}
		}
		b.checkSequence(key, body)
	}
	return b.Backend.PutObject(bucket, key, meta, bytes.NewReader(body), int64(len(body)), cond)
}

func (b *checkedBackend) DeleteObject(bucket, key string) (gofakes3.ObjectDeleteResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.checkDelete(bucket, key)
	return b.Backend.DeleteObject(bucket, key)
}

func (b *checkedBackend) DeleteMulti(bucket string, keys ...string) (gofakes3.MultiDeleteResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range keys {
		b.checkDelete(bucket, k)
	}
	return b.Backend.DeleteMulti(bucket, keys...)
}

var mediaSequence = regexp.MustCompile(`#EXT-X-MEDIA-SEQUENCE:(\d+)`)

// checkSequence reports a media playlist whose media sequence is lower than that of
// the version put before it: a stale writer, or a presentation that did not continue.
func (b *checkedBackend) checkSequence(key string, body []byte) {
	m := mediaSequence.FindSubmatch(body)
	if m == nil {
		return
	}
	n, _ := strconv.Atoi(string(m[1]))
	if last, ok := b.seq[key]; ok && n < last {
		b.errs = append(b.errs, fmt.Sprintf("PUT %s: media sequence %d after %d", key, n, last))
	}
	b.seq[key] = n
}

// checkDelete reports a delete of an object that a manifest in the bucket names, but
// for the manifests themselves.
func (b *checkedBackend) checkDelete(bucket, key string) {
	if isManifest(key) {
		return
	}
	job := path.Dir(path.Dir(key)) + "/" // <prefix>/<job>/<rendition>/<file>
	l, err := b.ListBucket(bucket, &gofakes3.Prefix{HasPrefix: true, Prefix: job}, gofakes3.ListBucketPage{})
	if err != nil {
		return
	}
	for _, o := range l.Contents {
		if !isManifest(o.Key) {
			continue
		}
		obj, err := b.GetObject(bucket, o.Key, nil)
		if err != nil {
			continue
		}
		data, _ := io.ReadAll(obj.Contents)
		obj.Contents.Close()
		names, _ := ManifestFiles("/"+o.Key, data)
		for _, n := range names {
			if n == "/"+key {
				b.errs = append(b.errs, fmt.Sprintf("DELETE %s, named by %s in the bucket", key, o.Key))
			}
		}
	}
}
