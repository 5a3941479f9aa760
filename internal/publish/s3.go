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
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// S3Options is how an S3 publisher reaches its store, beside the s3://bucket/prefix
// that --publish names. Credentials are never among them: they come from the standard
// AWS environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), else
// the shared credentials file (~/.aws/credentials, AWS_PROFILE), else, on AWS itself,
// the instance's role.
type S3Options struct {
	// Endpoint is the store's address: "" is AWS (s3.amazonaws.com); host[:port]
	// speaks HTTPS; http://host[:port] or https://host[:port] say which.
	Endpoint string
	// Region is the bucket's; "" lets the client find it (AWS) or use us-east-1.
	Region string
	// URLStyle is how a request names the bucket: "auto" (""; virtual-host on AWS,
	// path elsewhere), "path" (endpoint/bucket/key: Ceph RGW, Garage, SeaweedFS, MinIO)
	// or "virtual" (bucket.endpoint/key).
	URLStyle string
	// Creds, when set, replace the environment's (tests).
	Creds *credentials.Credentials
}

const awsEndpoint = "s3.amazonaws.com"

// S3Config is an S3 publisher's settings.
type S3Config struct {
	Bucket, Prefix string // each job's folder is put under <Prefix>/<job id>/ in Bucket
	S3Options
	Options
}

// NewS3 returns the publisher to an S3 bucket.
func NewS3(cfg S3Config) (*Remote, error) {
	cfg.defaults()
	if err := s3utils.CheckValidBucketNameStrict(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("'publish' s3://%s: bucket name: %w", cfg.Bucket, err)
	}
	secure, host, err := s3Endpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	lookup, err := s3Lookup(cfg.URLStyle)
	if err != nil {
		return nil, err
	}
	creds := cfg.Creds
	if creds == nil {
		creds = envCredentials(host == awsEndpoint)
	}
	c, err := minio.New(host, &minio.Options{
		Creds: creds, Secure: secure, Region: cfg.Region, BucketLookup: lookup,
		// The publisher retries with its own backoff, counting every failure, and
		// holds no worker in a retry loop of the client's.
		MaxRetries: 1,
		Transport:  &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 4 * cfg.Workers, IdleConnTimeout: time.Minute},
	})
	if err != nil {
		return nil, fmt.Errorf("'s3-endpoint' %q: %w", cfg.Endpoint, err)
	}
	name := "s3://" + path.Join(cfg.Bucket, cfg.Prefix)
	if cfg.Endpoint != "" {
		name += " at " + c.EndpointURL().String()
	}
	return newRemote(&s3Store{c: c, creds: creds, bucket: cfg.Bucket, prefix: cfg.Prefix, name: name}, cfg.Options), nil
}

// s3Endpoint splits --s3-endpoint into whether it speaks TLS and its host[:port].
func s3Endpoint(e string) (secure bool, host string, err error) {
	switch {
	case e == "":
		return true, awsEndpoint, nil
	case !strings.Contains(e, "://"):
		return true, e, nil
	}
	u, err := url.Parse(e)
	switch {
	case err != nil:
		return false, "", fmt.Errorf("'s3-endpoint' %q: %w", e, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return false, "", fmt.Errorf("'s3-endpoint' %q: want host[:port], http://host[:port] or https://host[:port]", e)
	case u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil:
		return false, "", fmt.Errorf("'s3-endpoint' %q: want a host and port alone (the bucket goes in --publish s3://bucket/prefix)", e)
	}
	return u.Scheme == "https", u.Host, nil
}

func s3Lookup(style string) (minio.BucketLookupType, error) {
	switch style {
	case "", "auto":
		return minio.BucketLookupAuto, nil
	case "path":
		return minio.BucketLookupPath, nil
	case "virtual":
		return minio.BucketLookupDNS, nil
	}
	return 0, fmt.Errorf("'s3-url-style' %q: want auto, path or virtual", style)
}

// envCredentials are the standard AWS environment's, then the shared credentials
// file's, then (on AWS) the instance role's.
func envCredentials(aws bool) *credentials.Credentials {
	chain := []credentials.Provider{&credentials.EnvAWS{}, &credentials.FileAWSCredentials{}}
	if aws {
		chain = append(chain, &credentials.IAM{Client: &http.Client{Timeout: 5 * time.Second}})
	}
	return credentials.NewChainCredentials(chain)
}

// s3Store is a bucket of an S3-compatible store.
type s3Store struct {
	c              *minio.Client
	creds          *credentials.Credentials
	bucket, prefix string
	name           string
}

func (s *s3Store) String() string { return s.name }

// key is the object name of the file rel of job id.
func (s *s3Store) key(id, rel string) string { return path.Join(s.prefix, id, rel) }

func (s *s3Store) put(ctx context.Context, id, rel string, body io.Reader, size int64, m meta) error {
	_, err := s.c.PutObject(ctx, s.bucket, s.key(id, rel), body, size, minio.PutObjectOptions{
		ContentType: m.contentType, CacheControl: m.cacheControl,
		DisableMultipart: true, // segments are far below S3's 5 GiB single-PUT limit
	})
	if err != nil {
		return fmt.Errorf("put s3://%s/%s: %w", s.bucket, s.key(id, rel), err)
	}
	return nil
}

// remove deletes an object; S3 answers 204 for one that is already gone.
func (s *s3Store) remove(ctx context.Context, id, rel string) error {
	if err := s.c.RemoveObject(ctx, s.bucket, s.key(id, rel), minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("delete s3://%s/%s: %w", s.bucket, s.key(id, rel), err)
	}
	return nil
}

func (s *s3Store) get(ctx context.Context, id, rel string) ([]byte, error) {
	o, err := s.c.GetObject(ctx, s.bucket, s.key(id, rel), minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("get s3://%s/%s: %w", s.bucket, s.key(id, rel), err)
	}
	defer o.Close()
	data, err := io.ReadAll(io.LimitReader(o, maxFetch))
	if code := minio.ToErrorResponse(err).Code; code == "NoSuchKey" {
		err = fs.ErrNotExist
	}
	if err != nil {
		return nil, fmt.Errorf("get s3://%s/%s: %w", s.bucket, s.key(id, rel), err)
	}
	return data, nil
}

// removeAll deletes every object under the job's prefix, in batches of up to 1000.
func (s *s3Store) removeAll(ctx context.Context, id string) error {
	prefix := s.key(id, "") + "/"
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var listErr error
	objects := make(chan minio.ObjectInfo)
	go func() {
		defer close(objects)
		for o := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if o.Err != nil {
				listErr = o.Err
				return
			}
			select {
			case objects <- o:
			case <-ctx.Done():
				return
			}
		}
	}()
	var errs []error
	for e := range s.c.RemoveObjects(ctx, s.bucket, objects, minio.RemoveObjectsOptions{}) {
		errs = append(errs, fmt.Errorf("%s: %w", e.ObjectName, e.Err))
	}
	if err := errors.Join(append(errs, listErr)...); err != nil {
		return fmt.Errorf("delete s3://%s/%s: %w", s.bucket, prefix, err)
	}
	return nil
}

// check tells whether the bucket exists and the credentials may use it.
func (s *s3Store) check(ctx context.Context) error {
	if v, err := s.creds.GetWithContext(nil); err != nil || v.AccessKeyID == "" {
		return fmt.Errorf("'publish' %s: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones) in the environment, or AWS_PROFILE's in ~/.aws/credentials", s.name)
	}
	ok, err := s.c.BucketExists(ctx, s.bucket)
	switch code := minio.ToErrorResponse(err).Code; {
	case err == nil && !ok:
		return fmt.Errorf("'publish' %s: bucket %q does not exist", s.name, s.bucket)
	case err == nil:
		return nil
	case code == "":
		return fmt.Errorf("'publish' %s: %w: %w", s.name, ErrUnreachable, err)
	default:
		return fmt.Errorf("'publish' %s: %s: %w (credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)", s.name, code, err)
	}
}
