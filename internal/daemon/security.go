package daemon

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/source"
)

// DefaultLimits are the limits transcoderd runs with unless told otherwise
// (cmd/transcoderd starts its flags from them). A zero Config has no limits.
var DefaultLimits = job.Limits{
	MaxJobs:       16,
	MaxRenditions: 8,
	MaxHeight:     2160,
	MaxBitrate:    25_000_000,
	MaxWindow:     24 * time.Hour,
}

// MinTokenLen is the shortest API token accepted: long enough that guessing
// it over the network is hopeless (e.g. `openssl rand -hex 32`).
const MinTokenLen = 16

// security is what Config's access-control settings turn into at start-up.
type security struct {
	token string             // "" leaves the API open
	hosts *source.HostPolicy // nil allows every source host
	tls   *tls.Config        // nil serves plain HTTP
}

// validateSecurity reports every problem of the access-control settings.
func (c Config) validateSecurity() []error {
	var errs []error
	if _, err := c.token(); err != nil {
		errs = append(errs, err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("'tls-cert' and 'tls-key' go together: set both or neither"))
	}
	for name, list := range map[string]string{"source-allow": c.SourceAllow, "source-deny": c.SourceDeny} {
		if _, err := source.ParsePrefixes(list); err != nil {
			errs = append(errs, fmt.Errorf("'%s': %w", name, err))
		}
	}
	for name, v := range map[string]int64{
		"max-jobs": int64(c.Limits.MaxJobs), "max-renditions": int64(c.Limits.MaxRenditions), "max-height": int64(c.Limits.MaxHeight),
		"max-bitrate": c.Limits.MaxBitrate, "max-window": int64(c.Limits.MaxWindow),
	} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("'%s' must not be negative (0 means no limit)", name))
		}
	}
	return errs
}

// token returns the API token from APIToken or the first line of APITokenFile.
func (c Config) token() (string, error) {
	tok, from := c.APIToken, "api-token"
	if c.APITokenFile != "" {
		if c.APIToken != "" {
			return "", errors.New("'api-token' and 'api-token-file' are both set: use one")
		}
		data, err := os.ReadFile(c.APITokenFile)
		if errors.Is(err, fs.ErrNotExist) {
			// The images point api-token-file at a secret: say how to provide it, and how
			// to do without. No token is never the silent default.
			return "", fmt.Errorf("'api-token-file' %[1]s does not exist: create it, e.g. (umask 077; openssl rand -hex 32 > %[1]s), "+
				"and in a container mount it there (docker run -v \"$PWD/token:%[1]s:ro\", or a Compose or Kubernetes secret); "+
				"to run without a token, on a network you trust, set api-token-file to \"\" (TRANSCODERD_API_TOKEN_FILE=)", c.APITokenFile)
		}
		if errors.Is(err, fs.ErrPermission) {
			return "", fmt.Errorf("'api-token-file' %s cannot be read by the daemon's user (uid %d): give it that file (chown %d %s), "+
				"or in a container mount it readable by that uid", c.APITokenFile, os.Getuid(), os.Getuid(), c.APITokenFile)
		}
		if err != nil {
			return "", fmt.Errorf("'api-token-file': %w", err)
		}
		tok, _, _ = strings.Cut(string(data), "\n")
		from = "api-token-file"
	}
	tok = strings.TrimSpace(tok)
	switch {
	case tok == "" && from == "api-token-file":
		return "", fmt.Errorf("'api-token-file' %s holds no token", c.APITokenFile)
	case tok != "" && len(tok) < MinTokenLen:
		return "", fmt.Errorf("'%s' is %d characters: use at least %d (e.g. openssl rand -hex 32)", from, len(tok), MinTokenLen)
	case strings.ContainsFunc(tok, func(r rune) bool { return r < 0x21 || r > 0x7e }):
		return "", fmt.Errorf("'%s' may hold only printable ASCII without spaces", from)
	}
	return tok, nil
}

// security turns the validated settings into what the daemon uses: the token,
// the source host policy and the TLS configuration (the certificate is loaded
// now, so that a bad one stops the start, not the first client).
func (c Config) security() (security, error) {
	var s security
	var err error
	if s.token, err = c.token(); err != nil {
		return s, err
	}
	allow, err := source.ParsePrefixes(c.SourceAllow)
	if err != nil {
		return s, fmt.Errorf("'source-allow': %w", err)
	}
	deny, err := source.ParsePrefixes(c.SourceDeny)
	if err != nil {
		return s, fmt.Errorf("'source-deny': %w", err)
	}
	if c.SourceDenyPrivate {
		deny = append(deny, source.PrivateRanges...)
	}
	if len(allow) > 0 || len(deny) > 0 {
		s.hosts = &source.HostPolicy{Allow: allow, Deny: deny, Resolver: c.Resolver}
	}
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return s, fmt.Errorf("'tls-cert' and 'tls-key': %w", err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	}
	return s, nil
}

// serve prepares the HTTP server and its listener: time and size limits on
// requests, TLS when configured, and a warning when the API is reachable from
// other machines without a token.
func (s security) serve(hs *http.Server, ln net.Listener, log zerolog.Logger) net.Listener {
	hs.MaxHeaderBytes = 64 << 10
	hs.ReadTimeout = time.Minute // bodies are small (api.MaxBody): a slow one is an attack
	hs.IdleTimeout = 2 * time.Minute
	if s.token == "" && !loopback(ln.Addr()) {
		log.Warn().Str("listen", ln.Addr().String()).
			Msg("the API listens beyond loopback without a token: anyone who reaches it can start and delete jobs; set --api-token-file")
	}
	if s.tls != nil {
		return tls.NewListener(ln, s.tls)
	}
	return ln
}

func loopback(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}
