//go:build linux && (amd64 || arm64)

package srt

import (
	"net/netip"
	"syscall"
	"testing"
	"unsafe"
)

// TestSockaddr: a sender's address comes out as net.UDPConn gives it, and goes back
// into the sockaddr it came from (a link-local peer's zone included).
func TestSockaddr(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rsa   func() syscall.RawSockaddrAny
		want  string
		scope uint32
	}{
		{"ipv4", func() syscall.RawSockaddrAny {
			var rsa syscall.RawSockaddrAny
			sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&rsa))
			sa.Family, sa.Addr = syscall.AF_INET, [4]byte{192, 0, 2, 7}
			putPort(&sa.Port, 9000)
			return rsa
		}, "192.0.2.7:9000", 0},
		{"v4-mapped", func() syscall.RawSockaddrAny {
			var rsa syscall.RawSockaddrAny
			sa := (*syscall.RawSockaddrInet6)(unsafe.Pointer(&rsa))
			sa.Family, sa.Addr = syscall.AF_INET6, netip.MustParseAddr("::ffff:192.0.2.7").As16()
			putPort(&sa.Port, 65535)
			return rsa
		}, "[::ffff:192.0.2.7]:65535", 0},
		{"link-local", func() syscall.RawSockaddrAny {
			var rsa syscall.RawSockaddrAny
			sa := (*syscall.RawSockaddrInet6)(unsafe.Pointer(&rsa))
			sa.Family, sa.Addr, sa.Scope_id = syscall.AF_INET6, netip.MustParseAddr("fe80::1").As16(), 3
			putPort(&sa.Port, 1)
			return rsa
		}, "[fe80::1%3]:1", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rsa := tc.rsa()
			got := sockaddrAddrPort(&rsa)
			if got.String() != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
			if s := zoneIndex(got.Addr().Zone()); s != tc.scope {
				t.Errorf("scope back %d, want %d", s, tc.scope)
			}
		})
	}
}
