// Package daemon assembles transcoderd: it checks the tools it needs, prepares its
// folders, builds the job manager and the HTTP API, and runs them until its context ends.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/api"
	"github.com/transcoderd/transcoderd/internal/cluster"
	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/diskspace"
	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/fileio"
	"github.com/transcoderd/transcoderd/internal/gpu"
	"github.com/transcoderd/transcoderd/internal/ingest"
	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/metrics"
	"github.com/transcoderd/transcoderd/internal/publish"
	"github.com/transcoderd/transcoderd/internal/source"
	"github.com/transcoderd/transcoderd/internal/store"
	"github.com/transcoderd/transcoderd/profiles"
)

// Config is the daemon's configuration, from flags and TRANSCODERD_* variables.
type Config struct {
	Listen   string // address of the HTTP API
	Output   string // where job folders are written; served under /out/
	Publish  string // where viewers fetch them: "fs" or "" (Output itself), an http(s):// origin or s3://bucket/prefix (internal/publish)
	Profiles string // folder of ladder YAML files; they add to the embedded ones and replace those of the same name

	// The S3 store of --publish s3://...; its credentials come from the AWS_* environment.
	S3Endpoint string // "" AWS; host[:port] (HTTPS), or http://host[:port]
	S3Region   string // "" the store's own
	S3URLStyle string // auto (""), path or virtual

	NoBuiltinLadders bool   // offer the profiles folder's ladders alone
	Data             string // daemon state
	MediaRoot        string // folder that file sources are resolved in
	FFmpeg           string // ffmpeg binary (name or path)
	FFprobe          string // ffprobe binary (name or path)
	Version          string
	CPULimit         string // cores ("1.5") or share of the box ("75%"); "" is the default (90%)
	// RecordMinFree is the free space a recording leaves on the output's file system
	// (diskspace.ParseSize: "10GB"); "" or "0" is no reserve. DiskCheck is how often it
	// is measured (tests; 0 is diskspace.DefaultInterval).
	RecordMinFree string
	DiskCheck     time.Duration

	// Push ingest (internal/ingest), off unless a listener is set.
	IngestRTMPListen  string // address of the RTMP listener (":1935"); "" is off
	IngestRTMPSListen string // address of the RTMPS listener (":1936"); "" is off
	IngestTLSCert     string // PEM certificate (chain) of the RTMPS listener
	IngestTLSKey      string // PEM private key of IngestTLSCert
	IngestSRTListen   string // UDP address of the SRT listener (":9000"); "" is off
	IngestPublicHost  string // the host the ingest URLs name; "" is the listener's or this machine's
	IngestBindings    string // YAML file binding stream keys to the push jobs their first publish creates

	// Access control and limits (security.go).
	APIToken          string          // bearer token every /v1 route needs; "" leaves the API open
	APITokenFile      string          // file whose first line is the token, instead of APIToken
	MetricsAuth       bool            // /metrics needs the token too
	TLSCert, TLSKey   string          // PEM files: serve HTTPS
	SourceAllow       string          // comma-separated CIDRs every source host must resolve into; "" allows all
	SourceDeny        string          // comma-separated CIDRs no source host may resolve into
	SourceDenyPrivate bool            // also deny loopback, private and link-local ranges
	Limits            job.Limits      // zero fields are not checked; see DefaultLimits
	Resolver          source.Resolver // resolves source hosts; nil is the system resolver

	// A fleet of boxes (issue 18, fleet.go); with no BoxID the box is alone, as ever.
	BoxID         string         // this box's id in the fleet
	ClusterListen string         // route address of the embedded NATS server ("host:6222")
	ClusterPeers  string         // comma-separated route addresses of the other boxes' servers
	NATSURL       string         // comma-separated URLs of an external NATS (≥ 2.11), instead of the embedded one
	APIURL        string         // the URL other boxes reach this box's API at; "" derives it from Listen
	ClusterCA     string         // PEM file of the CA of the other boxes' API certificates; "" trusts the system's
	FleetTiming   cluster.Timing // zero: cluster.DefaultTiming (10 s TTL, 2 s heartbeat, 7 s fence)
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("'listen' must not be empty"))
	} else if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("'listen' %q: %w", c.Listen, err))
	}
	for name, v := range map[string]string{"output": c.Output, "profiles": c.Profiles, "data": c.Data, "media-root": c.MediaRoot} {
		if v == "" {
			errs = append(errs, fmt.Errorf("'%s' must not be empty", name))
		}
	}
	for name, v := range map[string]string{"ingest-rtmp-listen": c.IngestRTMPListen, "ingest-rtmps-listen": c.IngestRTMPSListen, "ingest-srt-listen": c.IngestSRTListen} {
		if _, _, err := net.SplitHostPort(v); v != "" && err != nil {
			errs = append(errs, fmt.Errorf("'%s' %q: %w", name, v, err))
		}
	}
	if err := c.publishing(nil).Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.recordMinFree(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.validateIngestTLS()...)
	errs = append(errs, c.validateSecurity()...)
	errs = append(errs, c.validateFleet()...)
	return errors.Join(errs...)
}

// publishing is the daemon's publishing settings.
func (c Config) publishing(obs publish.Observer) publish.Config {
	return publish.Config{Spec: c.Publish, S3: publish.S3Options{Endpoint: c.S3Endpoint, Region: c.S3Region, URLStyle: c.S3URLStyle}, Observer: obs}
}

// startPublishing builds the publisher and checks that its store takes files: a
// missing bucket or refused credentials stop the daemon; a store that does not answer
// yet is warned of (deliveries retry).
func startPublishing(ctx context.Context, pc publish.Config, log zerolog.Logger) (publish.Publisher, error) {
	pub, err := publish.Parse(pc)
	if err != nil {
		return nil, err
	}
	r, ok := pub.(*publish.Remote)
	if !ok {
		return pub, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch err := r.Check(cctx); {
	case errors.Is(err, publish.ErrUnreachable):
		log.Warn().Err(err).Msg("publish: the store does not answer yet; deliveries retry")
	case err != nil:
		r.Close(0)
		return nil, err
	}
	log.Info().Str("publish", r.String()).Msg("publishing to a remote origin: the output folder is scratch; segments, then the manifests naming them, are put there")
	return pub, nil
}

// recordMinFree is the recordings' reserve in bytes.
func (c Config) recordMinFree() (uint64, error) {
	if c.RecordMinFree == "" {
		return 0, nil
	}
	n, err := diskspace.ParseSize(c.RecordMinFree)
	if err != nil {
		return 0, fmt.Errorf("'record-min-free': %w", err)
	}
	return n, nil
}

// publishFlush is how long a stopping daemon tries to deliver what its jobs wrote last
// to the origin (--publish http://...).
const publishFlush = 10 * time.Second

// Run runs the daemon until ctx is done, then stops every job and returns.
// ready, when not nil, receives the address the API listens on once it does.
func Run(ctx context.Context, c Config, log zerolog.Logger, ready func(addr string)) error {
	if err := c.Validate(); err != nil {
		return err
	}
	sec, err := c.security()
	if err != nil {
		return err
	}
	version, err := ffmpeg.Check(ctx, c.FFmpeg, c.FFprobe)
	if err != nil {
		return err
	}
	// Check found both; keep their absolute paths so a later PATH change cannot swap them.
	ffmpegPath, _ := exec.LookPath(c.FFmpeg)
	ffprobePath, _ := exec.LookPath(c.FFprobe)
	log.Info().Str("ffmpeg", ffmpegPath).Str("version", version).Msg("ffmpeg found")
	// The GPUs, probed once (trial encodes included) and logged; POST
	// /v1/capabilities/probe probes again.
	hw := gpu.NewService(gpu.Prober{FFmpeg: ffmpegPath}, log)
	hw.Probe(ctx)
	for _, d := range []string{c.Output, c.Data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create folder: %w", err)
		}
	}
	if err := os.MkdirAll(c.MediaRoot, 0o755); err != nil {
		return fmt.Errorf("create media root: %w", err)
	}
	output, err := filepath.Abs(c.Output)
	if err != nil {
		return fmt.Errorf("output folder: %w", err)
	}
	db, err := store.Open(c.Data)
	if err != nil {
		return err
	}
	defer db.Close() // after jobs.Close below: deferred calls run last-in first-out
	var jobStore job.Store = db
	var fl *fleet
	if c.clustered() {
		if fl, err = joinFleet(ctx, c, db, log); err != nil {
			return err
		}
		defer fl.close() // after jobs.Close: their last checkpoints go out first
		jobStore = fl.store
	}
	limit, err := cpucap.ParseLimit(c.CPULimit, cpucap.Cores())
	if err != nil {
		return err
	}
	cpu := cpucap.New(limit, "/sys/fs/cgroup")
	defer cpu.Close()
	if cpu.Mode() == "priority" {
		log.Warn().Float64("cpu_limit", limit).Msg("no cgroup is writable (cgroup v2 cpu.max or v1 cpu.cfs_quota_us): the CPU limit holds at admission only, and ffmpeg runs at nice 10")
	} else {
		ev := log.Info().Float64("cpu_limit", limit).Str("enforced_by", cpu.Mode()).Str("cgroup", cpu.Group()).Bool("quota", !cpu.Whole())
		if cpu.Delegated() {
			ev.Msg("CPU cap: its cgroup is inside the daemon's own (delegated) cgroup")
		} else {
			ev.AnErr("not_delegated", cpu.Why()).Msg("CPU cap: its cgroup is at the root of the hierarchy (for a service, systemd's Delegate=yes puts it inside the service's own)")
		}
	}
	var builtin fs.FS = profiles.FS
	if c.NoBuiltinLadders {
		builtin = nil
	}
	ladders := ladder.NewStore(c.Profiles, builtin)
	src, err := ladders.Sources()
	if err != nil {
		return fmt.Errorf("'profiles': %w", err)
	}
	ev := log.Info().Str("profiles", c.Profiles).Strs("builtin", src.Builtin).Strs("folder", src.Folder).Strs("replaced", src.Replaced)
	switch {
	case c.NoBuiltinLadders && len(src.Folder) == 0:
		ev.Msg("no ladders: the profiles folder has none, and the built-in ones are off (--builtin-ladders=false)")
	case c.NoBuiltinLadders:
		ev.Msg("ladders: the profiles folder's alone (--builtin-ladders=false)")
	case !src.FolderExists:
		ev.Msg("profiles folder not found: offering the built-in ladders")
	case len(src.Folder) == 0:
		ev.Msg("profiles folder has no ladders: offering the built-in ladders")
	default:
		ev.Msg("ladders: the profiles folder's, and the built-in ones it does not replace")
	}
	bindings, err := c.loadBindings(ladders)
	if err != nil {
		return err
	}
	met := metrics.New(nil, nil)
	met.SetOutput(output)
	reserve, _ := c.recordMinFree() // Validate checked it
	hub, err := ingest.New(ingest.Config{RTMPListen: c.IngestRTMPListen, RTMPSListen: c.IngestRTMPSListen, TLSCert: c.IngestTLSCert, TLSKey: c.IngestTLSKey, SRTListen: c.IngestSRTListen, PublicHost: c.IngestPublicHost, Hold: true, Log: log, Observer: met})
	if err != nil {
		return err
	}
	defer hub.Close() // after jobs.Close: their runs end first
	pub, err := startPublishing(ctx, c.publishing(met), log)
	if err != nil {
		return err
	}
	// After jobs.Close: their final manifests are delivered, for at most publishFlush.
	defer pub.Close(publishFlush)
	jobs := job.NewManager(job.Config{
		Output:    output,
		MediaRoot: c.MediaRoot,
		FFmpeg:    ffmpegPath,
		FFprobe:   ffprobePath,
		Ladders:   ladders,
		Log:       log,
		Limits:    c.Limits,
		Hosts:     sec.hosts,
		Store:     jobStore,
		CPU:       cpu,
		GPU:       hw,
		Observer:  met,
		Ingest:    hub,
		Publish:   pub,

		RecordMinFree: reserve,
		DiskCheck:     c.DiskCheck,
	})
	defer jobs.Close()
	if fl == nil {
		if err := jobs.Restore(ctx); err != nil {
			return err
		}
	}
	if bindings != nil {
		b := &binder{jobs: jobs, bindings: bindings, log: log}
		b.sync()
		hub.SetBinder(b)
		log.Info().Str("file", bindings.File).Int("bindings", len(bindings.List)).Msg("ingest bindings: the first publish of a bound key creates its job")
	}
	hub.Start() // now that the jobs and bindings are back: a reconnecting encoder finds its job

	met.SetJobs(jobs)
	met.SetCPU(func() (used, limit float64) {
		for _, v := range jobs.List() {
			if !v.State.Ended() {
				used += v.CPU
			}
		}
		return used, cpu.Limit()
	})
	srv := &api.Server{Token: sec.token, MetricsAuth: c.MetricsAuth, Jobs: jobs, Ladders: ladders, Output: output, Log: log, Version: c.Version, Metrics: met.Handler(), GPU: hw}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	ln = sec.serve(hs, ln, log)
	if fl != nil {
		apiURL := c.apiURL(ln.Addr(), sec)
		if err := fl.start(jobs, capacity(c, apiURL, version, jobs, cpu, hw)); err != nil {
			return err
		}
		srv.Fleet = fleetAPI{fl}
		if srv.FleetTLS, err = c.fleetTLS(); err != nil {
			return err
		}
		log.Info().Str("box", c.BoxID).Str("api_url", apiURL).Msg("fleet: this box is one of the fleet")
	}
	// On tmpfs the jobs' file calls are the cheap raw ones (fileio.For): say which it is.
	log.Info().Str("listen", ln.Addr().String()).Str("output", output).
		Bool("output_in_memory", fileio.For(output).InMemory()).Msg("transcoderd ready")
	if ready != nil {
		ready(ln.Addr().String())
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info().Msg("shutting down: stopping jobs")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	return nil
}
