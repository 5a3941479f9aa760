// Package healthcheck asks a running transcoderd whether it is healthy, for a
// container's HEALTHCHECK or a supervisor, without curl: it GETs /healthz on the
// address the daemon listens on (loopback when it listens on every address), over
// HTTPS when the daemon serves it. /healthz needs no token.
package healthcheck

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
)

// URL returns the /healthz URL of a daemon listening on listen (host:port). An
// unspecified host is reached on loopback: 127.0.0.1 for 0.0.0.0 and an empty host,
// localhost for :: (a dual-stack listener: localhost tries ::1 and 127.0.0.1, so the
// check works where IPv6 is off on loopback).
func URL(listen string, https bool) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("'listen' %q: %w", listen, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "localhost"
	}
	scheme := "http"
	if https {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/healthz", nil
}

// Check GETs /healthz of the daemon listening on listen and returns nil when it
// answers 200 with status "ok", and its version. tlsCert is the daemon's
// --tls-cert ("" for plain HTTP): the daemon must present exactly that certificate
// (it is pinned, so a loopback address that is not in the certificate's names is
// fine, and nothing else can answer in its place). Proxies from the environment are
// not used.
func Check(ctx context.Context, listen, tlsCert string) (version string, err error) {
	url, err := URL(listen, tlsCert != "")
	if err != nil {
		return "", err
	}
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	if tlsCert != "" {
		leaf, err := firstCertificate(tlsCert)
		if err != nil {
			return "", err
		}
		tr.TLSClientConfig = &tls.Config{
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: true, // replaced by the pin below
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, leaf) {
					return fmt.Errorf("the server at %s does not present the certificate of %s", listen, tlsCert)
				}
				return nil
			},
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", fmt.Errorf("health check: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("health check: %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("health check: %s answered %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	var h struct{ Status, Version string }
	if err := json.Unmarshal(body, &h); err != nil || h.Status != "ok" {
		return "", fmt.Errorf("health check: %s answered %q, not {\"status\": \"ok\"}", url, bytes.TrimSpace(body))
	}
	return h.Version, nil
}

// firstCertificate returns the DER bytes of the first certificate of a PEM file.
func firstCertificate(file string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("'tls-cert': %w", err)
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("'tls-cert' " + file + " holds no PEM certificate")
		}
		if b.Type == "CERTIFICATE" {
			return b.Bytes, nil
		}
	}
}
