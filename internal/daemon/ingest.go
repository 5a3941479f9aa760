package daemon

import (
	"errors"

	"github.com/transcoderd/transcoderd/internal/ingest"
)

// validateIngestTLS reports what is wrong with the RTMPS settings: the listener needs
// a certificate and its key, which must load (readable, PEM, matching), and a
// certificate without the listener is a mistake, not a no-op.
func (c Config) validateIngestTLS() []error {
	hasCert, hasKey := c.IngestTLSCert != "", c.IngestTLSKey != ""
	switch {
	case c.IngestRTMPSListen != "" && (!hasCert || !hasKey):
		return []error{errors.New("'ingest-rtmps-listen' needs 'ingest-tls-cert' and 'ingest-tls-key' (PEM files)")}
	case c.IngestRTMPSListen == "" && (hasCert || hasKey):
		return []error{errors.New("'ingest-tls-cert' and 'ingest-tls-key' are for RTMPS: set 'ingest-rtmps-listen' too, or leave them empty")}
	case c.IngestRTMPSListen == "":
		return nil
	}
	if _, err := ingest.LoadCert(c.IngestTLSCert, c.IngestTLSKey); err != nil {
		return []error{err}
	}
	return nil
}
