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
		rsa   syscall.RawSockaddrAny
		want  string
		scope uint32
	}{
		{"ipv4", inet4([4]byte{192, 0, 2, 7}, 9000), "192.0.2.7:9000", 0},
		{"v4-mapped", inet6("::ffff:192.0.2.7", 65535, 0), "[::ffff:192.0.2.7]:65535", 0},
		{"link-local", inet6("fe80::1", 1, 3), "[fe80::1%3]:1", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := sockaddrAddrPort(&tc.rsa)
			if got.String() != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
			if s := zoneIndex(got.Addr().Zone()); s != tc.scope {
				t.Errorf("scope back %d, want %d", s, tc.scope)
			}
		})
	}
}

// inet4 is the sockaddr of an IPv4 sender.
func inet4(addr [4]byte, port uint16) (rsa syscall.RawSockaddrAny) {
	sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&rsa))
	sa.Family, sa.Addr = syscall.AF_INET, addr
	putPort(&sa.Port, port)
	return rsa
}

// inet6 is the sockaddr of an IPv6 sender.
func inet6(addr string, port uint16, scope uint32) (rsa syscall.RawSockaddrAny) {
	sa := (*syscall.RawSockaddrInet6)(unsafe.Pointer(&rsa))
	sa.Family, sa.Addr, sa.Scope_id = syscall.AF_INET6, netip.MustParseAddr(addr).As16(), scope
	putPort(&sa.Port, port)
	return rsa
}
