//go:build linux && (amd64 || arm64)

package srt

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"unsafe"
)

// The listener reads and writes its socket with raw system calls, which the Go runtime
// is not told of; the socket is non-blocking (as net makes it), so no call can block a
// thread, and a read that finds nothing waits in the runtime's poller as net.UDPConn
// does. A call that goes through the runtime (net.UDPConn's) wakes its monitor thread
// (sysmon) whenever the process was idle, which then polls every 20 µs for a
// millisecond or more: a publisher's datagrams arrive in a burst per frame, and the
// hub is idle in between (internal/ingest's rawio.go does the same for RTMP).

// rawSocket is a UDP socket's descriptor, its address family, and the reader's
// buffers: one goroutine reads (read), any may write.
type rawSocket struct {
	rc    syscall.RawConn
	inet6 bool // an AF_INET6 socket: IPv4 peers are v4-mapped

	buf, oob []byte
	rsa      syscall.RawSockaddrAny
	iov      syscall.Iovec
	msg      syscall.Msghdr
	n        int
	errno    syscall.Errno
	recv     func(fd uintptr) bool // recvmsg, made once: a closure per read would allocate

	wmu    sync.Mutex // guards the writers' state
	wsa4   syscall.RawSockaddrInet4
	wsa6   syscall.RawSockaddrInet6
	wiov   syscall.Iovec
	wmsg   syscall.Msghdr
	werrno syscall.Errno
	send   func(fd uintptr) bool // sendmsg, made once
}

// newRawSocket reads pc's datagrams into buf and their control messages into oob.
func newRawSocket(pc *net.UDPConn, buf, oob []byte) (*rawSocket, error) {
	rc, err := pc.SyscallConn()
	if err != nil {
		return nil, err
	}
	s := &rawSocket{rc: rc, buf: buf, oob: oob}
	var serr error
	err = rc.Control(func(fd uintptr) {
		var sa syscall.Sockaddr
		sa, serr = syscall.Getsockname(int(fd))
		_, s.inet6 = sa.(*syscall.SockaddrInet6)
	})
	if err == nil {
		err = serr
	}
	s.iov.Base = &buf[0]
	s.iov.SetLen(len(buf))
	s.msg.Name, s.msg.Iov, s.msg.Iovlen = (*byte)(unsafe.Pointer(&s.rsa)), &s.iov, 1
	s.recv, s.send = s.recvmsg, s.sendmsg
	return s, err
}

func (s *rawSocket) recvmsg(fd uintptr) bool {
	for {
		s.msg.Namelen = syscall.SizeofSockaddrAny
		s.msg.Control = &s.oob[0]
		s.msg.SetControllen(len(s.oob))
		r, _, errno := syscall.RawSyscall(syscall.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&s.msg)), 0)
		s.n, s.errno = int(r), errno
		if errno != syscall.EINTR {
			return errno != syscall.EAGAIN
		}
	}
}

// read reads one datagram, waiting in the runtime's poller (with the socket's read
// deadline) when none is there; it returns the datagram, its control messages and its
// sender. data and oob are the reader's buffers, valid until the next read.
func (s *rawSocket) read() (data, oob []byte, from netip.AddrPort, err error) {
	err = s.rc.Read(s.recv)
	if err == nil && s.errno != 0 {
		err = s.errno
	}
	if err != nil {
		return nil, nil, netip.AddrPort{}, err
	}
	return s.buf[:s.n], s.oob[:s.msg.Controllen], sockaddrAddrPort(&s.rsa), nil
}

// write sends b to with the control messages oob (nil for none), waiting in the
// runtime's poller while the socket's send buffer is full.
func (s *rawSocket) write(b []byte, to netip.AddrPort, oob []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	m := &s.wmsg
	*m = syscall.Msghdr{}
	if s.inet6 {
		s.wsa6 = syscall.RawSockaddrInet6{Family: syscall.AF_INET6, Addr: to.Addr().As16()} // v4-mapped for an IPv4 peer
		putPort(&s.wsa6.Port, to.Port())
		s.wsa6.Scope_id = zoneIndex(to.Addr().Zone())
		m.Name, m.Namelen = (*byte)(unsafe.Pointer(&s.wsa6)), syscall.SizeofSockaddrInet6
	} else {
		if !to.Addr().Unmap().Is4() {
			return syscall.EAFNOSUPPORT
		}
		s.wsa4 = syscall.RawSockaddrInet4{Family: syscall.AF_INET, Addr: to.Addr().Unmap().As4()}
		putPort(&s.wsa4.Port, to.Port())
		m.Name, m.Namelen = (*byte)(unsafe.Pointer(&s.wsa4)), syscall.SizeofSockaddrInet4
	}
	s.wiov = syscall.Iovec{}
	if len(b) > 0 {
		s.wiov.Base = &b[0]
		s.wiov.SetLen(len(b))
	}
	m.Iov, m.Iovlen = &s.wiov, 1
	if len(oob) > 0 {
		m.Control = &oob[0]
		m.SetControllen(len(oob))
	}
	err := s.rc.Write(s.send)
	if err == nil && s.werrno != 0 {
		err = s.werrno
	}
	s.wiov.Base, m.Control = nil, nil // the caller's buffers are not kept
	return err
}

func (s *rawSocket) sendmsg(fd uintptr) bool {
	for {
		_, _, s.werrno = syscall.RawSyscall(syscall.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&s.wmsg)), 0)
		if s.werrno != syscall.EINTR {
			return s.werrno != syscall.EAGAIN
		}
	}
}

// sockaddrAddrPort is the address a datagram came from, in the form net.UDPConn gives
// it (IPv4 peers of an AF_INET6 socket stay v4-mapped).
func sockaddrAddrPort(rsa *syscall.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case syscall.AF_INET:
		sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port(sa.Port))
	case syscall.AF_INET6:
		sa := (*syscall.RawSockaddrInet6)(unsafe.Pointer(rsa))
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			a = a.WithZone(zoneName(sa.Scope_id))
		}
		return netip.AddrPortFrom(a, port(sa.Port))
	}
	return netip.AddrPort{}
}

// port reads a sockaddr's port, which is in network byte order.
func port(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}

func putPort(p *uint16, v uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(v>>8), byte(v)
}

// zoneName is an IPv6 scope as the address's zone: its interface index, in decimal
// (an interface lookup per datagram would cost a netlink dump; net's own cache is
// not exported).
func zoneName(index uint32) string {
	return strconv.FormatUint(uint64(index), 10)
}

// zoneIndex is the scope of a zone that zoneName made (or an interface's name).
func zoneIndex(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n)
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}
