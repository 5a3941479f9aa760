package ingest

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// listenRTMPS starts the RTMPS listener: TLS around the same RTMP handler as the
// plain listener's, with the certificate of cfg.TLSCert and cfg.TLSKey, loaded now (a
// bad pair stops the start) and again whenever either file changes.
func (h *Hub) listenRTMPS(addr string) error {
	certs, err := newCertFiles(h.cfg.TLSCert, h.cfg.TLSKey, h.log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("ingest rtmps listen: %w", err)
	}
	h.rtmps = tls.NewListener(ln, &tls.Config{GetCertificate: certs.get, MinVersion: tls.VersionTLS12})
	h.log.Info().Str("rtmps", ln.Addr().String()).Msg("push ingest listening")
	return nil
}

// RTMPSAddr is the address the RTMPS listener listens on; nil when it is off.
func (h *Hub) RTMPSAddr() net.Addr {
	if h == nil || h.rtmps == nil {
		return nil
	}
	return h.rtmps.Addr()
}

// LoadCert reads a PEM certificate (chain) and its private key, as the RTMPS listener
// does: the errors name the settings.
func LoadCert(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return cert, fmt.Errorf("'ingest-tls-cert' %s and 'ingest-tls-key' %s: %w", certFile, keyFile, err)
	}
	return cert, nil
}

// certFiles is a certificate and key pair read from files, read again at the first
// handshake after either file's modification time or size changed (certbot renewing
// it). A pair that does not load then is logged once and the one before is kept.
type certFiles struct {
	certFile, keyFile string
	log               zerolog.Logger

	mu    sync.Mutex
	cert  *tls.Certificate
	stamp [2]fileStamp // of certFile and keyFile when cert was loaded or last tried
}

// fileStamp is what tells that a file changed.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{fi.ModTime(), fi.Size()}
}

func newCertFiles(certFile, keyFile string, log zerolog.Logger) (*certFiles, error) {
	c := &certFiles{certFile: certFile, keyFile: keyFile, log: log}
	c.stamp = [2]fileStamp{stampOf(certFile), stampOf(keyFile)}
	cert, err := LoadCert(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	c.cert = &cert
	return c, nil
}

// get is tls.Config.GetCertificate: the pair, reloaded first when its files changed.
func (c *certFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	now := [2]fileStamp{stampOf(c.certFile), stampOf(c.keyFile)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if now == c.stamp {
		return c.cert, nil
	}
	c.stamp = now
	cert, err := LoadCert(c.certFile, c.keyFile)
	if err != nil {
		// Perhaps half written (the certificate renewed, not yet its key): the next
		// change of either file tries again.
		c.log.Error().Err(err).Msg("rtmps certificate changed but does not load: keeping the one before")
		return c.cert, nil
	}
	c.cert = &cert
	c.log.Info().Str("cert", c.certFile).Msg("rtmps certificate reloaded")
	return c.cert, nil
}
