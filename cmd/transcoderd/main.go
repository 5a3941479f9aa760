// Command transcoderd turns live and recorded video into adaptive HLS and DASH streams.
// See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/daemon"
)

var version = "dev"

func main() {
	args := os.Args[1:]
	check := len(args) > 0 && args[0] == "healthcheck"
	if check {
		args = args[1:]
	}
	c := daemon.Config{Version: version}
	fs := flag.NewFlagSet("transcoderd", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage:\n  transcoderd [flags]              run the daemon\n"+
			"  transcoderd healthcheck [flags]  GET /healthz of the daemon these flags and variables describe (--listen, --tls-cert); exit 0 when healthy, 1 when not\n\nFlags:\n")
		fs.PrintDefaults()
	}
	str := func(p *string, name, def, usage string) {
		fs.StringVar(p, name, env(name, def), usage+" (env "+envName(name)+")")
	}
	str(&c.Listen, "listen", "127.0.0.1:8080", "address of the HTTP API")
	str(&c.Output, "output", "./out", "folder the streams are written to; serve it with any web server")
	str(&c.Publish, "publish", "fs", "where viewers fetch the streams: fs (the output folder), http://origin/path (https too) or s3://bucket/prefix: each segment, then the manifests naming it, is put there and old segments deleted; the output folder is then scratch")
	str(&c.S3Endpoint, "s3-endpoint", "", "the S3-compatible store of --publish s3://: host[:port] (HTTPS) or http://host[:port] (Ceph RGW, Garage, SeaweedFS, MinIO); default AWS. Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, or ~/.aws/credentials")
	str(&c.S3Region, "s3-region", "", "the bucket's region (Garage: garage); default the store's own")
	str(&c.S3URLStyle, "s3-url-style", "auto", "how requests name the bucket: auto (virtual-host on AWS, path elsewhere), path or virtual")
	str(&c.Profiles, "profiles", "./profiles", "folder of ladder YAML files; they add to the built-in ladders and replace those of the same name")
	str(&c.Data, "data", "./data", "folder for the daemon's own state")
	str(&c.MediaRoot, "media-root", "./media", "folder that file sources are resolved in")
	str(&c.RecordMinFree, "record-min-free", "1GB", "free space recordings (record: true) leave on the output's file system, like 10GB or 500MiB: a recording job is refused below it, and every recording stops (not the live streams) when free space falls below it; 0 for none")
	str(&c.CPULimit, "cpu-limit", "", "CPU cap for all ffmpeg processes: cores (1.5) or a share of the box (75%); default 90% of the cores")
	str(&c.FFmpeg, "ffmpeg", "ffmpeg", "ffmpeg binary")
	str(&c.FFprobe, "ffprobe", "ffprobe", "ffprobe binary")
	str(&c.IngestRTMPListen, "ingest-rtmp-listen", "", "address encoders publish push jobs to over RTMP (:1935); off when empty")
	str(&c.IngestRTMPSListen, "ingest-rtmps-listen", "", "address encoders publish push jobs to over RTMPS (:1936), with --ingest-tls-cert and --ingest-tls-key; off when empty")
	str(&c.IngestTLSCert, "ingest-tls-cert", "", "PEM certificate (chain) of the RTMPS listener; read again when the file changes (certbot renewals)")
	str(&c.IngestTLSKey, "ingest-tls-key", "", "PEM private key of --ingest-tls-cert")
	str(&c.IngestSRTListen, "ingest-srt-listen", "", "UDP address encoders publish push jobs to over SRT (:9000), with streamid=publish:KEY; off when empty")
	str(&c.IngestBindings, "ingest-bindings", "", "YAML file of stream keys (or env:NAME) bound to {id, ladder}: a key's first publish creates its push job; mode 0600")
	str(&c.IngestPublicHost, "ingest-public-host", "", "host name the ingest URLs shown by the API carry; default the listener's address, or this machine's name")
	str(&c.BoxID, "box-id", "", "this box's id in a fleet of boxes (with --cluster-listen or --nats-url); empty: a single box, as ever")
	str(&c.ClusterListen, "cluster-listen", "", "route address (host:6222) of the NATS server this box embeds for the fleet (JetStream, R3 with two peers)")
	str(&c.ClusterPeers, "cluster-peers", "", "comma-separated route addresses (host:6222) of the other boxes' embedded NATS servers")
	str(&c.NATSURL, "nats-url", "", "comma-separated URLs of a NATS (≥ 2.11, JetStream) the fleet uses instead of an embedded one")
	str(&c.ClusterCA, "cluster-ca", "", "PEM file of the CA that signed the other boxes' API certificates (--tls-cert), when it is a private one")
	str(&c.APIURL, "api-url", "", "the URL the other boxes of the fleet reach this box's API at; default from --listen (this machine's name when it listens on every address)")
	securityFlags(fs, &c, str)
	builtin := fs.Bool("builtin-ladders", true, "offer the built-in ladders (default, lowlatency, mobile, test) beside the profiles folder's; false: the folder's alone")
	fromEnv(fs, "builtin-ladders")
	logFormat := fs.String("log-format", env("log-format", "auto"), "auto | json | console (env TRANSCODERD_LOG_FORMAT)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	_ = fs.Parse(args)
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "transcoderd: unexpected argument %q: the daemon takes flags only (transcoderd healthcheck checks a running one)\n", fs.Arg(0))
		os.Exit(2)
	}
	c.NoBuiltinLadders = !*builtin
	if *showVersion {
		fmt.Println("transcoderd", version)
		return
	}
	if check {
		os.Exit(checkHealth(c))
	}

	log := zerolog.New(os.Stderr).With().Timestamp().Logger()
	if *logFormat == "console" || (*logFormat == "auto" && isTerminal(os.Stderr)) {
		log = log.Output(zerolog.ConsoleWriter{Out: os.Stderr})
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := daemon.Run(ctx, c, log, nil); err != nil {
		log.Error().Err(err).Msg("transcoderd stopped")
		fmt.Fprintln(os.Stderr, "transcoderd:", err)
		os.Exit(1)
	}
}

// fromEnv sets typed flags (numbers, booleans, durations) from their TRANSCODERD_*
// variables through the flag's own parser, so a bad value is refused like a bad flag;
// string flags take theirs as their default (see str in main). The command line wins
// over both.
func fromEnv(fs *flag.FlagSet, names ...string) {
	for _, name := range names {
		f := fs.Lookup(name)
		f.Usage += " (env " + envName(name) + ")"
		if v, ok := os.LookupEnv(envName(name)); ok {
			if err := f.Value.Set(v); err != nil {
				fmt.Fprintf(os.Stderr, "transcoderd: %s=%q: %v\n", envName(name), v, err)
				os.Exit(2)
			}
		}
	}
}

func envName(flag string) string {
	b := []byte("TRANSCODERD_" + flag)
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = '_'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func env(flag, def string) string {
	if v, ok := os.LookupEnv(envName(flag)); ok {
		return v
	}
	return def
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
