package srt

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/datarhei/gosrt/crypto"
	"github.com/datarhei/gosrt/packet"
)

// Request is a caller's conclusion handshake, waiting for Accept or Reject. The caller
// repeats its conclusion until it has an answer, so answer at once.
type Request struct {
	l          *Listener
	cif        *packet.CIFHandshake
	from       netip.AddrPort
	src        []byte // the control message that answers from the address the caller dialled
	id         uint32
	start      time.Time
	ts         uint32 // the conclusion's timestamp: the caller's clock then, in µs
	crypto     crypto.Crypto
	passphrase string
	answered   atomic.Bool
}

// RemoteAddr is the caller's address.
func (r *Request) RemoteAddr() net.Addr { return net.UDPAddrFromAddrPort(r.from) }

// StreamID is the stream id the caller sent (empty when it sent none).
func (r *Request) StreamID() string { return r.cif.StreamId }

// Encrypted reports whether the caller encrypts: then Accept needs SetPassphrase first.
func (r *Request) Encrypted() bool { return r.crypto != nil }

// SetPassphrase unwraps the caller's key with passphrase: an error means the
// passphrase is not the caller's.
func (r *Request) SetPassphrase(passphrase string) error {
	if r.crypto == nil {
		return errors.New("srt: the caller does not encrypt")
	}
	if err := r.crypto.UnmarshalKM(r.cif.SRTKM, passphrase); err != nil {
		return fmt.Errorf("srt: key material: %w", err)
	}
	r.passphrase = passphrase
	return nil
}

// Reject refuses the request with reason (one of the Reject constants). A request
// already answered is left as it is: deferring a Reject is safe.
func (r *Request) Reject(reason uint32) {
	if r.answered.Swap(true) {
		return
	}
	r.reject(reason)
}

func (r *Request) reject(reason uint32) {
	r.cif.HandshakeType = packet.HandshakeType(reason)
	r.l.send(r.l.handshakePacket(r.cif.SRTSocketId, r.cif), r.from, r.src)
	r.l.forget(r.id, r.cif.SRTSocketId, nil)
}

// maxLatency caps the latency a caller may ask for: its packets are held that long.
const maxLatency = 10_000 // ms

// Accept answers the caller and returns its connection.
func (r *Request) Accept() (*Conn, error) {
	if r.answered.Swap(true) {
		return nil, errors.New("srt: the request was answered already")
	}
	if r.crypto != nil && r.passphrase == "" {
		r.reject(RejectUnsecure)
		return nil, errors.New("srt: the caller encrypts and no passphrase was set")
	}
	hs, peerID := r.cif.SRTHS, r.cif.SRTSocketId
	latency := min(max(uint16(r.l.cfg.Latency.Milliseconds()), hs.SendTSBPDDelay), maxLatency)
	c := newConn(r, time.Duration(latency)*time.Millisecond)

	r.cif.SRTSocketId, r.cif.SynCookie = r.id, 0
	hs.SRTVersion = 0x010401
	hs.SRTFlags.TSBPDSND, hs.SRTFlags.TSBPDRCV, hs.SRTFlags.CRYPT = true, true, true
	hs.SRTFlags.TLPKTDROP, hs.SRTFlags.PERIODICNAK, hs.SRTFlags.REXMITFLG = true, true, true
	hs.SRTFlags.STREAM, hs.SRTFlags.PACKET_FILTER = false, false
	hs.RecvTSBPDDelay, hs.SendTSBPDDelay = latency, hs.RecvTSBPDDelay
	answer := marshal(r.l.handshakePacket(peerID, r.cif))

	r.l.mu.Lock()
	if r.l.closing {
		r.l.mu.Unlock()
		r.cif.SRTSocketId = peerID
		r.reject(RejectClose)
		return nil, ErrClosed
	}
	r.l.conns[r.id] = c
	r.l.peers[peerID] = c
	r.l.resp[peerID] = &response{to: r.from, data: answer}
	r.l.mu.Unlock()
	_ = r.l.pc.SetReadDeadline(time.Now().Add(housekeeping)) // look after c even if it sends nothing
	r.l.write(answer, r.from, r.src)
	return c, nil
}

// marshal is p's bytes; it frees p.
func marshal(p packet.Packet) []byte {
	defer p.Decommission()
	var b bytes.Buffer
	_ = p.Marshal(&b)
	return b.Bytes()
}
