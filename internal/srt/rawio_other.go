//go:build !linux || (!amd64 && !arm64)

package srt

import (
	"net"
	"net/netip"
)

// rawSocket, elsewhere, reads and writes through net.UDPConn (see rawio.go).
type rawSocket struct {
	pc       *net.UDPConn
	buf, oob []byte
}

func newRawSocket(pc *net.UDPConn, buf, oob []byte) (*rawSocket, error) {
	return &rawSocket{pc: pc, buf: buf, oob: oob}, nil
}

func (s *rawSocket) read() (data, oob []byte, from netip.AddrPort, err error) {
	n, oobn, _, from, err := s.pc.ReadMsgUDPAddrPort(s.buf, s.oob)
	return s.buf[:n], s.oob[:oobn], from, err
}

func (s *rawSocket) write(b []byte, to netip.AddrPort, oob []byte) error {
	_, _, err := s.pc.WriteMsgUDPAddrPort(b, oob, to)
	return err
}
