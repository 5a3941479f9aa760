// Package srt is an SRT listener for publishers: live mode, receive only, HSv5
// handshakes with a stream id, AES encryption by passphrase, loss recovery by NAK and
// too-late packet drop. It reuses gosrt's packet codec, key material, congestion
// receiver and SYN cookies, and replaces gosrt's connection plumbing: gosrt moves each
// packet through three goroutines and wakes every connection every 10 ms, which on a
// small virtual machine costs several per cent of a core per publisher. Here one
// goroutine reads the socket and handles every packet where it lands; acknowledgements
// ride on arrivals (at most one full ACK per 10 ms, as SRT asks) and a 100 ms
// housekeeping pass delivers a stalled stream's tail, sends keepalives and ends
// connections that went silent.
package srt

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/datarhei/gosrt/crypto"
	srtnet "github.com/datarhei/gosrt/net"
	"github.com/datarhei/gosrt/packet"
	"github.com/datarhei/gosrt/rand"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Reasons a request is refused with, as SRT numbers them (SRT_REJ_*, and the
// access-control extension's 1400s).
const (
	RejectRogue        uint32 = 1004 // broken or unsupported handshake
	RejectBacklog      uint32 = 1005 // too many requests waiting for an answer
	RejectInternal     uint32 = 1006 // the server failed
	RejectClose        uint32 = 1007 // the listener is closing
	RejectVersion      uint32 = 1008 // the caller's SRT is too old
	RejectBadSecret    uint32 = 1010 // wrong passphrase
	RejectUnsecure     uint32 = 1011 // a passphrase was required, or one was given for none
	RejectMessageAPI   uint32 = 1012 // not live mode
	RejectCongestion   uint32 = 1013 // not live congestion control
	RejectUnauthorized uint32 = 1401 // unknown stream id
	RejectOverload     uint32 = 1402 // too many failures from the address
)

// minVersion is the oldest SRT a caller may run: 1.3.0, the first with HSv5 and
// stream ids (every OBS, ffmpeg and hardware encoder of the last years).
const minVersion = 0x010300

// mss is the largest UDP payload taken: SRT's default MTU.
const mss = 1500

// housekeeping is how often every connection is looked after between arrivals.
const housekeeping = 100 * time.Millisecond

// ErrClosed is what Accept returns once the listener is closed.
var ErrClosed = errors.New("srt: listener closed")

// Config is a listener's setting. Zero values take the defaults.
type Config struct {
	// Latency is the least receive latency (TSBPD delay): how long a packet may wait
	// for a retransmission before it is given up. A caller's larger one wins. 120 ms.
	Latency time.Duration
	// PeerIdleTimeout ends a connection after this long without any packet from its
	// peer (a caller sends keepalives every second when it has nothing else). 5 s.
	PeerIdleTimeout time.Duration
	// Backlog is how many requests may wait for Accept. 128.
	Backlog int
}

// Listener takes SRT publishers on one UDP socket.
type Listener struct {
	pc     *net.UDPConn
	sock   *rawSocket // pc's descriptor, read and written with raw system calls
	cfg    Config
	start  time.Time
	cookie *srtnet.SYNCookie
	reqs   chan *Request
	done   chan struct{}
	err    error // why the reader stopped, set before done closes
	closed sync.Once

	mu      sync.Mutex
	conns   map[uint32]*Conn     // by our socket id
	peers   map[uint32]*Conn     // by the caller's socket id; nil while its request waits
	closing bool                 //
	lastHK  time.Time            // the last housekeeping pass (the reader's own)
	sendMu  sync.Mutex           //
	sendBuf bytes.Buffer         // under sendMu
	resp    map[uint32]*response // by the caller's socket id: the answer given, for a repeated conclusion
}

// response is the conclusion answer an accepted caller got, sent again if it asks again
// (its copy was lost).
type response struct {
	to   netip.AddrPort
	data []byte
}

// Listen opens a listener on the UDP address addr ("host:port").
func Listen(addr string, cfg Config) (*Listener, error) {
	if cfg.Latency <= 0 {
		cfg.Latency = 120 * time.Millisecond
	}
	if cfg.PeerIdleTimeout <= 0 {
		cfg.PeerIdleTimeout = 5 * time.Second
	}
	if cfg.Backlog <= 0 {
		cfg.Backlog = 128
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("srt listen %s: %w", addr, err)
	}
	pc, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("srt listen: %w", err)
	}
	_ = pc.SetReadBuffer(4 << 20) // bursts of a frame's packets; the kernel caps it
	if ua.IP == nil || ua.IP.IsUnspecified() {
		// On every address: learn which one each caller dialled, to answer from it (a
		// caller takes replies from the address it sent to only).
		_ = ipv4.NewPacketConn(pc).SetControlMessage(ipv4.FlagDst, true)
		_ = ipv6.NewPacketConn(pc).SetControlMessage(ipv6.FlagDst, true)
	}
	cookie, err := srtnet.NewSYNCookie(pc.LocalAddr().String(), nil)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("srt listen: %w", err)
	}
	sock, err := newRawSocket(pc, make([]byte, mss), make([]byte, 128))
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("srt listen: %w", err)
	}
	l := &Listener{
		pc: pc, sock: sock, cfg: cfg, start: time.Now(), cookie: cookie,
		reqs: make(chan *Request, cfg.Backlog), done: make(chan struct{}),
		conns: map[uint32]*Conn{}, peers: map[uint32]*Conn{}, resp: map[uint32]*response{},
	}
	go l.read()
	return l, nil
}

// Addr is the listener's UDP address.
func (l *Listener) Addr() net.Addr { return l.pc.LocalAddr() }

// Accept returns the next caller's request, which the caller waits on until Accept or
// Reject answers it.
func (l *Listener) Accept() (*Request, error) {
	select {
	case r := <-l.reqs:
		return r, nil
	case <-l.done:
		return nil, l.err
	}
}

// Close ends every connection, answers waiting requests with a refusal and closes the
// socket.
func (l *Listener) Close() error {
	l.closed.Do(func() {
		l.mu.Lock()
		l.closing = true
		l.mu.Unlock()
		for _, c := range l.connections() {
			c.Close()
		}
		l.rejectWaiting() // while the socket can still tell them
		l.pc.Close()
		<-l.done
		l.rejectWaiting()
	})
	return nil
}

// rejectWaiting refuses the requests Accept has not taken.
func (l *Listener) rejectWaiting() {
	for {
		select {
		case r := <-l.reqs:
			r.Reject(RejectClose)
		default:
			return
		}
	}
}

// read is the listener's one reader: it handles every packet where it lands.
func (l *Listener) read() {
	defer close(l.done)
	for {
		data, oob, from, err := l.sock.read()
		now := time.Now()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			l.housekeep(now)
			continue
		}
		if err != nil {
			l.mu.Lock()
			closing := l.closing
			l.mu.Unlock()
			l.err = ErrClosed
			if !closing {
				l.err = fmt.Errorf("srt: read: %w", err)
				for _, c := range l.connections() { // nothing will reach them
					c.close(false)
				}
			}
			return
		}
		l.packet(data, from, oob, now)
		if now.Sub(l.lastHK) >= housekeeping {
			l.housekeep(now)
		}
	}
}

// packet dispatches one datagram: handshakes to the listener, the rest to the
// connection it is addressed to (from its peer's address only).
func (l *Listener) packet(data []byte, from netip.AddrPort, oob []byte, now time.Time) {
	if len(data) < 16 {
		return
	}
	dest := uint32(data[12])<<24 | uint32(data[13])<<16 | uint32(data[14])<<8 | uint32(data[15])
	if dest == 0 {
		l.handshake(data, from, sourceOOB(oob))
		return
	}
	l.mu.Lock()
	c := l.conns[dest]
	l.mu.Unlock()
	if c != nil && c.peer == from {
		c.handle(data, now)
	}
}

// housekeep looks after every connection, and keeps the reader waking up every
// housekeeping period while there is one.
func (l *Listener) housekeep(now time.Time) {
	l.lastHK = now
	conns := l.connections()
	for _, c := range conns {
		c.housekeep(now)
	}
	// Never no deadline: a connection accepted meanwhile is looked after within a
	// second even if its caller sends nothing.
	deadline := now.Add(time.Second)
	if len(conns) > 0 {
		deadline = now.Add(housekeeping)
	}
	_ = l.pc.SetReadDeadline(deadline)
}

// connections are the accepted connections (not the places reserved for requests).
func (l *Listener) connections() []*Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	conns := make([]*Conn, 0, len(l.conns))
	for _, c := range l.conns {
		if c != nil {
			conns = append(conns, c)
		}
	}
	return conns
}

// send writes a control packet to, from the address src pins (see sourceOOB), and
// frees it.
func (l *Listener) send(p packet.Packet, to netip.AddrPort, src []byte) {
	defer p.Decommission()
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	l.sendBuf.Reset()
	if err := p.Marshal(&l.sendBuf); err == nil {
		l.write(l.sendBuf.Bytes(), to, src)
	}
}

// write sends a datagram to, from the address src pins.
func (l *Listener) write(b []byte, to netip.AddrPort, src []byte) {
	_ = l.sock.write(b, to, src)
}

// handshakePacket is an empty handshake control packet to the caller's socket.
func (l *Listener) handshakePacket(dest uint32, cif *packet.CIFHandshake) packet.Packet {
	p := packet.NewPacket(nil)
	h := p.Header()
	h.IsControlPacket = true
	h.ControlType = packet.CTRLTYPE_HANDSHAKE
	h.Timestamp = uint32(time.Since(l.start).Microseconds())
	h.DestinationSocketId = dest
	_ = p.MarshalCIF(cif)
	return p
}

// handshake answers an induction with a SYN cookie, and makes a request of a
// conclusion that carries it (or refuses one that SRT cannot take).
func (l *Listener) handshake(data []byte, from netip.AddrPort, src []byte) {
	p, err := parsePacket(data)
	if err != nil {
		return
	}
	h := p.Header()
	if !h.IsControlPacket || h.ControlType != packet.CTRLTYPE_HANDSHAKE {
		p.Decommission()
		return
	}
	cif, ts := &packet.CIFHandshake{}, h.Timestamp
	err = unmarshalCIF(p, cif)
	p.Decommission()
	if err != nil {
		return
	}
	cif.PeerIP.FromNetAddr(l.pc.LocalAddr())
	switch cif.HandshakeType {
	case packet.HSTYPE_INDUCTION:
		cif.Version, cif.EncryptionField, cif.ExtensionField = 5, 0, 0x4A17
		cif.SynCookie = l.cookie.Get(from.String())
		l.send(l.handshakePacket(cif.SRTSocketId, cif), from, src)
	case packet.HSTYPE_CONCLUSION:
		l.conclusion(cif, ts, from, src)
	}
}

// conclusion makes a request of a caller's conclusion, refuses one SRT cannot serve,
// and answers a repeated one as before.
func (l *Listener) conclusion(cif *packet.CIFHandshake, ts uint32, from netip.AddrPort, src []byte) {
	if reason := check(cif, l.cookie.Verify(cif.SynCookie, from.String())); reason != 0 {
		cif.HandshakeType = packet.HandshakeType(reason)
		l.send(l.handshakePacket(cif.SRTSocketId, cif), from, src)
		return
	}
	l.mu.Lock()
	if r := l.resp[cif.SRTSocketId]; r != nil && r.to == from {
		l.write(r.data, from, src) // its answer was lost
		l.mu.Unlock()
		return
	}
	if _, waiting := l.peers[cif.SRTSocketId]; waiting || l.closing {
		l.mu.Unlock()
		return
	}
	id, err := l.socketID()
	if err != nil {
		l.mu.Unlock()
		return
	}
	l.peers[cif.SRTSocketId] = nil
	l.conns[id] = nil
	l.mu.Unlock()
	req := &Request{l: l, cif: cif, from: from, src: src, id: id, start: time.Now(), ts: ts}
	if cif.SRTKM != nil {
		if req.crypto, err = crypto.New(int(cif.SRTKM.KLen)); err != nil {
			req.Reject(RejectRogue)
			return
		}
	}
	select {
	case l.reqs <- req:
	default:
		req.Reject(RejectBacklog)
	}
}

// check says why SRT cannot serve a conclusion (0: it can).
func check(cif *packet.CIFHandshake, cookie bool) uint32 {
	switch {
	case !cookie, cif.MaxTransmissionUnitSize > mss, cif.Version != 5, cif.SRTHS == nil:
		return RejectRogue
	case cif.SRTHS.SRTVersion < minVersion:
		return RejectVersion
	case !cif.SRTHS.SRTFlags.TSBPDSND || !cif.SRTHS.SRTFlags.TLPKTDROP:
		return RejectRogue
	case cif.SRTHS.SRTFlags.STREAM:
		return RejectMessageAPI
	case cif.HasCongestionCtl && cif.CongestionCtl != "live":
		return RejectCongestion
	}
	return 0
}

// socketID draws an unused socket id; l.mu is held.
func (l *Listener) socketID() (uint32, error) {
	for range 10 {
		id, err := rand.Uint32()
		if err != nil {
			return 0, fmt.Errorf("srt: socket id: %w", err)
		}
		if _, used := l.conns[id]; !used && id != 0 {
			return id, nil
		}
	}
	return 0, errors.New("srt: no unused socket id")
}

// forget removes the places of a request (c nil) or of connection c, if they are
// still theirs.
func (l *Listener) forget(id, peerID uint32, c *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.conns[id]; ok && cur == c {
		delete(l.conns, id)
	}
	if cur, ok := l.peers[peerID]; ok && cur == c {
		delete(l.peers, peerID)
		delete(l.resp, peerID)
	}
}

// parsePacket is gosrt's packet parser, with a panic of it (FuzzPacket found a
// malformed datagram that makes one) turned into an error: the datagram is dropped, not
// the daemon.
func parsePacket(data []byte) (p packet.Packet, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("srt: malformed packet: %v", r)
		}
	}()
	return packet.NewPacketFromData(nil, data)
}

// unmarshalCIF is gosrt's control information parser, its panics turned into errors
// (FuzzPacket found a handshake whose extension runs past its end that makes one).
func unmarshalCIF(p packet.Packet, cif packet.CIF) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("srt: malformed control packet: %v", r)
		}
	}()
	return p.UnmarshalCIF(cif)
}

// sourceOOB turns the destination address a datagram came to (its IP_PKTINFO or
// IPV6_PKTINFO) into the control message that sends from that address; nil when the
// socket is bound to one address (then the kernel picks it anyway).
func sourceOOB(oob []byte) []byte {
	if len(oob) == 0 {
		return nil
	}
	var cm4 ipv4.ControlMessage
	if cm4.Parse(oob) == nil && cm4.Dst != nil {
		if ip4 := cm4.Dst.To4(); ip4 != nil {
			return (&ipv4.ControlMessage{Src: ip4}).Marshal()
		}
	}
	var cm6 ipv6.ControlMessage
	if cm6.Parse(oob) == nil && cm6.Dst != nil {
		if ip4 := cm6.Dst.To4(); ip4 != nil { // a v4-mapped address on a dual-stack socket
			return (&ipv4.ControlMessage{Src: ip4}).Marshal()
		}
		return (&ipv6.ControlMessage{Src: cm6.Dst}).Marshal()
	}
	return nil
}
