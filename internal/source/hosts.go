package source

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// Resolver looks up the addresses of a host name; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// HostPolicy limits the hosts that network sources may name, so that a client
// of the API cannot make the daemon pull from (and so probe) its own private
// network: server-side request forgery. A host name is resolved and every
// address it resolves to must pass: none in Deny (which wins), and, when Allow
// is not empty, each in Allow. The zero policy allows every host and resolves
// nothing.
//
// The check runs when a job is created. It cannot see what ffmpeg connects to
// later: a name that resolves to another address by then (DNS rebinding), an
// HTTP redirect, or an HLS playlist that names segments on another host. Where
// that matters, firewall the daemon's outgoing traffic too.
type HostPolicy struct {
	Allow    []netip.Prefix
	Deny     []netip.Prefix
	Resolver Resolver // nil means net.DefaultResolver
}

// PrivateRanges are the addresses a public-facing daemon should not pull from:
// "this network", private (RFC 1918, unique local), shared (CGNAT), loopback,
// link-local (which holds cloud metadata services at 169.254.169.254),
// benchmarking, multicast and reserved ranges, for IPv4 and IPv6.
var PrivateRanges = mustPrefixes("0.0.0.0/8,10.0.0.0/8,100.64.0.0/10,127.0.0.0/8,169.254.0.0/16,172.16.0.0/12," +
	"192.0.0.0/24,192.168.0.0/16,198.18.0.0/15,224.0.0.0/4,240.0.0.0/4," +
	"::/128,::1/128,fc00::/7,fe80::/10,ff00::/8")

// ParsePrefixes reads a comma-separated list of CIDR prefixes ("10.0.0.0/8,
// fd00::/8"); a bare address stands for itself alone. Spaces around entries
// and empty entries are ignored, so "" is an empty list.
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q is not an address or a CIDR prefix such as 10.0.0.0/8", s)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR prefix such as 10.0.0.0/8: %w", s, err)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func mustPrefixes(list string) []netip.Prefix {
	p, err := ParsePrefixes(list)
	if err != nil {
		panic(err) // a constant list: a bad entry is a bug found by the first test
	}
	return p
}

// Empty reports whether p checks nothing.
func (p *HostPolicy) Empty() bool {
	return p == nil || len(p.Allow) == 0 && len(p.Deny) == 0
}

// Check refuses a network source whose host, or any address the host resolves
// to, the policy does not allow. Files and a nil or empty policy pass. Every
// refusal wraps ErrInvalid.
func (p *HostPolicy) Check(ctx context.Context, s Source) error {
	if p.Empty() || !s.Live {
		return nil
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return invalid("cannot parse URL: %v", err)
	}
	host := u.Hostname()
	addrs, err := p.resolve(ctx, host)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		for _, d := range p.Deny {
			if d.Contains(a) {
				return invalid("host %q is %s, in the denied range %s", host, a, d)
			}
		}
		if len(p.Allow) > 0 && !containsAddr(p.Allow, a) {
			return invalid("host %q is %s, which is not in an allowed range", host, a)
		}
	}
	return nil
}

// resolve returns the addresses of host: itself when it is an address, else
// what the resolver says. It fails closed: no answer is a refusal.
func (p *HostPolicy) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if host == "" {
		return nil, invalid("URL has no host")
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	if legacyIPv4(host) {
		// getaddrinfo, which ffmpeg uses, reads "2130706433", "0x7f.1" or
		// "0177.0.0.1" as 127.0.0.1; the Go resolver would look them up as names.
		return nil, invalid("host %q is an IPv4 address in a legacy form: write it as four decimal numbers (a.b.c.d)", host)
	}
	r := p.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, invalid("cannot resolve host %q: %v", host, err)
	}
	if len(addrs) == 0 {
		return nil, invalid("host %q has no address", host)
	}
	return addrs, nil
}

func containsAddr(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// legacyIPv4 reports whether host is one to four dot-separated numbers in the
// forms inet_aton accepts (decimal, 0x hex, 0 octal): an address, not a name.
func legacyIPv4(host string) bool {
	parts := strings.Split(strings.TrimSuffix(host, "."), ".")
	if len(parts) > 4 {
		return false
	}
	for _, part := range parts {
		digits := part
		if h, ok := strings.CutPrefix(strings.ToLower(part), "0x"); ok {
			digits = h
			if strings.Trim(digits, "0123456789abcdef") != "" {
				return false
			}
			continue
		}
		if digits == "" || strings.Trim(digits, "0123456789") != "" {
			return false
		}
	}
	return true
}
