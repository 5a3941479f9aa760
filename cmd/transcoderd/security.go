package main

import (
	"flag"

	"github.com/transcoderd/transcoderd/internal/daemon"
	"github.com/transcoderd/transcoderd/internal/ladder"
)

// securityFlags declares the access-control and limit flags; each takes its default
// from its TRANSCODERD_* variable (fromEnv), the command line winning.
func securityFlags(fs *flag.FlagSet, c *daemon.Config, str func(p *string, name, def, usage string)) {
	str(&c.APIToken, "api-token", "", "bearer token every /v1 route needs (prefer --api-token-file: arguments are visible to other users)")
	str(&c.APITokenFile, "api-token-file", "", "file whose first line is the API token")
	str(&c.TLSCert, "tls-cert", "", "PEM certificate (chain): serve HTTPS; needs --tls-key")
	str(&c.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	str(&c.SourceAllow, "source-allow", "", "comma-separated CIDRs: network sources must resolve only into these (e.g. 203.0.113.0/24)")
	str(&c.SourceDeny, "source-deny", "", "comma-separated CIDRs network sources must not resolve into; wins over --source-allow")

	lim := daemon.DefaultLimits
	c.Limits.MaxBitrate = lim.MaxBitrate // the default of the bitrate flag below
	fs.BoolVar(&c.MetricsAuth, "metrics-auth", true, "/metrics needs the API token too (when one is set)")
	fs.BoolVar(&c.SourceDenyPrivate, "source-deny-private", false, "refuse sources on loopback, private, link-local and other non-public addresses (SSRF)")
	fs.IntVar(&c.Limits.MaxJobs, "max-jobs", lim.MaxJobs, "most jobs running or queued at once; 0: no limit")
	fs.IntVar(&c.Limits.MaxRenditions, "max-renditions", lim.MaxRenditions, "most video plus audio renditions in a job's ladder; 0: no limit")
	fs.IntVar(&c.Limits.MaxHeight, "max-height", lim.MaxHeight, "tallest video rung a job's ladder may have, in pixels; 0: no limit")
	fs.Var((*bitrate)(&c.Limits.MaxBitrate), "max-bitrate", "highest bitrate (or maxrate) of any rendition, e.g. 25M; 0: no limit")
	fs.DurationVar(&c.Limits.MaxWindow, "max-window", lim.MaxWindow, "longest time-shift window of a live job (window 0, keep everything, is refused); 0: no limit")
	fromEnv(fs, "metrics-auth", "source-deny-private", "max-jobs", "max-renditions", "max-height", "max-bitrate", "max-window")
}

// bitrate is a flag holding bits per second, written as in ladders: 25M, 8000k.
type bitrate int64

func (b *bitrate) String() string {
	if b == nil {
		return ""
	}
	return ladder.FormatBitrate(int64(*b))
}

func (b *bitrate) Set(s string) error {
	if s == "0" {
		*b = 0
		return nil
	}
	v, err := ladder.ParseBitrate(s)
	if err != nil {
		return err
	}
	*b = bitrate(v)
	return nil
}
