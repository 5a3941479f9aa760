package source

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// fakeResolver answers from a table; a missing name is "no such host". It
// records the names it was asked about.
type fakeResolver struct {
	hosts map[string][]string
	asked []string
}

func (r *fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.asked = append(r.asked, host)
	if network != "ip" {
		return nil, errors.New("unexpected network " + network)
	}
	list, ok := r.hosts[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	var out []netip.Addr
	for _, s := range list {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

func TestHostPolicy(t *testing.T) {
	res := &fakeResolver{hosts: map[string][]string{
		"cdn.example":       {"203.0.113.10", "2001:db8::10"},
		"cam.lan":           {"192.168.1.20"},
		"rebind.example":    {"203.0.113.11", "10.0.0.5"}, // one public, one private address
		"mapped.example":    {"::ffff:127.0.0.1"},
		"metadata.example":  {"169.254.169.254"},
		"empty.example":     {},
		"partner.example":   {"198.51.100.7"},
		"ipv6-only.example": {"fd00::1"},
	}}
	denyPrivate := &HostPolicy{Deny: PrivateRanges, Resolver: res}
	allowOnly := &HostPolicy{Allow: mustPrefixes("198.51.100.0/24,192.168.1.0/24"), Resolver: res}
	allowAndDeny := &HostPolicy{Allow: mustPrefixes("192.168.0.0/16"), Deny: mustPrefixes("192.168.1.20"), Resolver: res}

	tests := []struct {
		name    string
		policy  *HostPolicy
		source  string
		wantErr string
	}{
		{"nil policy allows all", nil, "rtmp://10.0.0.1/live", ""},
		{"empty policy allows all and resolves nothing", &HostPolicy{Resolver: res}, "rtmp://unknown.example/live", ""},
		{"public name", denyPrivate, "https://cdn.example/live.m3u8", ""},
		{"public address", denyPrivate, "rtmp://203.0.113.9/live", ""},
		{"loopback address", denyPrivate, "rtmp://127.0.0.1/live", `"127.0.0.1" is 127.0.0.1, in the denied range 127.0.0.0/8`},
		{"loopback v6", denyPrivate, "rtsp://[::1]:554/s", "in the denied range ::1/128"},
		{"v4-mapped v6 literal", denyPrivate, "rtsp://[::ffff:10.1.2.3]/s", "in the denied range 10.0.0.0/8"},
		{"link-local v6 with zone", denyPrivate, "rtsp://[fe80::1%25eth0]/s", "in the denied range fe80::/10"},
		{"private name", denyPrivate, "rtsp://cam.lan/s", `"cam.lan" is 192.168.1.20, in the denied range 192.168.0.0/16`},
		{"cloud metadata", denyPrivate, "http://metadata.example/latest", "169.254.0.0/16"},
		{"one private address among public ones", denyPrivate, "https://rebind.example/x.m3u8", "10.0.0.5"},
		{"name resolving to a mapped loopback", denyPrivate, "srt://mapped.example:9000", "127.0.0.0/8"},
		{"unique local v6", denyPrivate, "srt://ipv6-only.example:9000", "fc00::/7"},
		{"unresolvable name fails closed", denyPrivate, "rtmp://nowhere.example/live", `cannot resolve host "nowhere.example"`},
		{"no address", denyPrivate, "rtmp://empty.example/live", "has no address"},
		{"decimal address", denyPrivate, "rtmp://2130706433/live", "legacy form"},
		{"hex address", denyPrivate, "rtmp://0x7f.1/live", "legacy form"},
		{"octal address", denyPrivate, "rtmp://0177.0.0.1/live", "legacy form"},
		{"allowed by allow list", allowOnly, "rtmp://partner.example/live", ""},
		{"allowed private by allow list", allowOnly, "rtsp://cam.lan/s", ""},
		{"outside the allow list", allowOnly, "https://cdn.example/x.m3u8", "203.0.113.10, which is not in an allowed range"},
		{"deny wins over allow", allowAndDeny, "rtsp://cam.lan/s", "in the denied range 192.168.1.20/32"},
		{"allow with deny elsewhere", allowAndDeny, "rtsp://192.168.2.2/s", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.policy.Check(context.Background(), Source{URL: tc.source, Kind: RTMP, Live: true})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Check(%s): %v", tc.source, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check(%s) passed, want %q", tc.source, tc.wantErr)
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Check(%s) = %q, want ErrInvalid containing %q", tc.source, err, tc.wantErr)
			}
		})
	}
	for _, h := range res.asked {
		if h == "unknown.example" {
			t.Error("an empty policy resolved a name")
		}
	}
}

func TestHostPolicyIgnoresFiles(t *testing.T) {
	res := &fakeResolver{}
	p := &HostPolicy{Deny: PrivateRanges, Resolver: res}
	if err := p.Check(context.Background(), Source{URL: "/media/a.mp4", Kind: File}); err != nil {
		t.Fatal(err)
	}
	if len(res.asked) != 0 {
		t.Errorf("resolved %v for a file", res.asked)
	}
}

func TestParsePrefixes(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: "", want: ""},
		{in: " , ", want: ""},
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: "10.1.2.3/8, fd00::/8 ,192.168.1.5", want: "10.0.0.0/8 fd00::/8 192.168.1.5/32"},
		{in: "::1", want: "::1/128"},
		{in: "::ffff:10.0.0.0/104", want: "10.0.0.0/8"},
		{in: "::ffff:10.0.0.1", want: "10.0.0.1/32"},
		{in: "10.0.0.0/33", wantErr: "not a CIDR prefix"},
		{in: "example.com", wantErr: "not an address or a CIDR prefix"},
		{in: "fe80::1%eth0", wantErr: "not an address"},
		{in: "10.0.0.0/8;rm", wantErr: "not a CIDR prefix"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePrefixes(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParsePrefixes(%q) = %v, %v; want error %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, p := range got {
				s = append(s, p.String())
			}
			if strings.Join(s, " ") != tc.want {
				t.Errorf("ParsePrefixes(%q) = %v, want %s", tc.in, s, tc.want)
			}
		})
	}
}

func TestPrivateRanges(t *testing.T) {
	for _, a := range []string{"127.0.0.1", "10.9.8.7", "172.31.255.255", "192.168.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.251", "::1", "::", "fd12::1", "fe80::abcd", "ff02::1"} {
		if !containsAddr(PrivateRanges, netip.MustParseAddr(a)) {
			t.Errorf("%s is not in PrivateRanges", a)
		}
	}
	for _, a := range []string{"8.8.8.8", "172.32.0.1", "192.169.0.1", "2606:4700::1111", "100.128.0.1"} {
		if containsAddr(PrivateRanges, netip.MustParseAddr(a)) {
			t.Errorf("public %s is in PrivateRanges", a)
		}
	}
}

func TestLegacyIPv4(t *testing.T) {
	for host, want := range map[string]bool{
		"2130706433": true, "0x7f000001": true, "0177.0.0.1": true, "127.1": true, "1.2.3.4.": true,
		"cafe": false, "bad.cafe": false, "example.com": false, "1.2.3.4.5": false, "0xzz": false, "": false, "a..b": false,
	} {
		if got := legacyIPv4(host); got != want {
			t.Errorf("legacyIPv4(%q) = %v, want %v", host, got, want)
		}
	}
}
