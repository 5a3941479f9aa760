package srt

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/datarhei/gosrt/circular"
	"github.com/datarhei/gosrt/congestion"
	"github.com/datarhei/gosrt/congestion/live"
	"github.com/datarhei/gosrt/crypto"
	"github.com/datarhei/gosrt/packet"
)

// maxBuffered bounds what a connection holds for a reader that fell behind; what
// comes over it is dropped (and counted).
const maxBuffered = 8 << 20

// Conn is an accepted publisher: Read returns its stream's bytes in order, with the
// packets SRT could not recover within the latency left out.
type Conn struct {
	l          *Listener
	id, peerID uint32
	peer       netip.AddrPort
	src        []byte // pins the source of what is sent to the address the peer dialled
	start      time.Time
	crypto     crypto.Crypto
	passphrase string
	done       chan struct{}
	ready      chan struct{} // a token when bytes arrive for a waiting Read
	closeOnce  sync.Once

	// pmu guards the protocol state: the reader's packets and the housekeeping pass.
	pmu        sync.Mutex
	recv       congestion.Receiver
	tsbpdBase  uint64 // µs: the caller's clock at its conclusion
	delay      uint64 // µs: the latency
	wrapping   bool   // the caller's 32-bit µs clock is about to wrap
	wrapOffset uint64
	lastTick   uint64 // µs since start
	delivered  bool   // the last tick delivered bytes
	rtt        float64
	rttVar     float64
	acks       map[uint32]time.Time // full ACKs sent, by number, for the RTT
	nextACK    uint32
	lastHeard  time.Time
	lastKey    time.Time // the last key refresh taken
	drift      int64     // µs the caller's clock has lost against ours (driftSample)
	driftSum   int64
	driftN     int64
	lastSent   time.Time

	mu          sync.Mutex // guards what follows
	buf         bytes.Buffer
	closed      bool
	overflow    uint64 // packets dropped because Read fell behind
	undecrypted uint64 // packets that did not decrypt
}

func newConn(r *Request, latency time.Duration) *Conn {
	now := time.Now()
	c := &Conn{
		l: r.l, id: r.id, peerID: r.cif.SRTSocketId, peer: r.from, src: r.src, start: r.start,
		crypto: r.crypto, passphrase: r.passphrase,
		done: make(chan struct{}), ready: make(chan struct{}, 1),
		tsbpdBase: uint64(r.ts), delay: uint64(latency.Microseconds()),
		rtt: 100_000, rttVar: 50_000, acks: map[uint32]time.Time{}, nextACK: 1,
		lastHeard: now, lastSent: now,
	}
	c.recv = live.NewReceiver(live.ReceiveConfig{
		InitialSequenceNumber: r.cif.InitialPacketSequenceNumber,
		PeriodicACKInterval:   10_000,
		PeriodicNAKInterval:   20_000,
		OnSendACK:             c.sendACK,
		OnSendNAK:             c.sendNAK,
		OnDeliver:             c.deliver,
	})
	return c
}

// handle takes one packet from the peer.
func (c *Conn) handle(data []byte, now time.Time) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	select {
	case <-c.done:
		return
	default:
	}
	c.lastHeard = now
	p, err := parsePacket(data)
	if err != nil {
		return
	}
	h := p.Header()
	if h.IsControlPacket {
		c.control(p, now)
		return
	}
	if h.MessageNumber == 0 { // a packet filter's (FEC) control packet
		p.Decommission()
		return
	}
	// Due at its send time (the caller's clock) and the latency, on the receiver's clock
	// that Tick reads: tsbpdBase + time since the conclusion, which carried the
	// caller's clock then.
	h.PktTsbpdTime = uint64(int64(c.unwrap(h.Timestamp)+c.delay) + c.drift)
	if c.crypto != nil {
		if h.KeyBaseEncryptionFlag == 0 || c.crypto.EncryptOrDecryptPayload(p.Data(), h.KeyBaseEncryptionFlag, h.PacketSequenceNumber.Val()) != nil {
			c.mu.Lock()
			c.undecrypted++
			c.mu.Unlock()
			p.Decommission() // not the stream: a gap, asked for again or given up
			return
		}
	}
	c.recv.Push(p)
	c.tick(now, false)
}

// unwrap extends the caller's 32-bit µs timestamp (it wraps every 71 minutes) as SRT's
// TSBPD time base does: a period of 30 s either side of the wrap.
func (c *Conn) unwrap(ts uint32) uint64 {
	const edge = 30_000_000
	if !c.wrapping && ts > packet.MAX_TIMESTAMP-edge {
		c.wrapping = true
	} else if c.wrapping && ts >= edge && ts <= 2*edge {
		c.wrapping = false
		c.wrapOffset += uint64(packet.MAX_TIMESTAMP) + 1
	}
	offset := c.wrapOffset
	if c.wrapping && ts < edge {
		offset += uint64(packet.MAX_TIMESTAMP) + 1
	}
	return offset + uint64(ts)
}

// Drift tracking, as libsrt does it: the mean of driftSamples ACKACKs (10 s of them)
// moves the time base when it is over maxDrift.
const (
	driftSamples = 1000
	maxDrift     = 5000 // µs
)

// driftSample follows the caller's clock against ours with an ACKACK's timestamp (its
// send time on the caller's clock): an encoder's clock 50 ppm slow would otherwise eat
// 120 ms of latency in 40 minutes, after which no lost packet can be sent again in
// time; one fast would grow the delay and the buffer by as much.
func (c *Conn) driftSample(now time.Time, ts uint32) {
	if c.wrapping {
		return // near the caller's clock wrap: the data packets' unwrap tracks it
	}
	// Both clocks read the conclusion's timestamp at its arrival (tsbpdBase): the gap
	// stays 0 but for changes of the path's delay, and drift.
	ours := int64(c.tsbpdBase) + now.Sub(c.start).Microseconds()
	c.driftSum += ours - int64(uint64(ts)+c.wrapOffset) - c.drift
	if c.driftN++; c.driftN < driftSamples {
		return
	}
	mean := c.driftSum / c.driftN
	c.driftSum, c.driftN = 0, 0
	if mean > maxDrift || mean < -maxDrift {
		c.drift += mean
	}
}

// tick runs the receiver: ACKs and NAKs when due, and delivery of the packets whose
// time came. On arrivals it runs at most once a millisecond.
func (c *Conn) tick(now time.Time, force bool) {
	us := uint64(now.Sub(c.start).Microseconds())
	if !force && us-c.lastTick < 1000 {
		return
	}
	c.lastTick = us
	c.delivered = false
	c.recv.Tick(c.tsbpdBase + us)
	if c.delivered {
		c.wake()
	}
}

// wake lets a waiting Read see what was delivered.
func (c *Conn) wake() {
	select {
	case c.ready <- struct{}{}:
	default:
	}
}

// control handles a control packet from the peer; it frees p.
func (c *Conn) control(p packet.Packet, now time.Time) {
	h := p.Header()
	switch {
	case h.ControlType == packet.CTRLTYPE_SHUTDOWN:
		p.Decommission()
		c.recv.Tick(math.MaxUint64 >> 1) // what came before it, without waiting for its time
		c.wake()
		go c.close(false)
	case h.ControlType == packet.CTRLTYPE_ACKACK:
		if sent, ok := c.acks[h.TypeSpecific]; ok {
			// 4.10 Round-Trip Time Estimation
			last := float64(now.Sub(sent).Microseconds())
			c.rtt = c.rtt*0.875 + last*0.125
			c.rttVar = c.rttVar*0.75 + math.Abs(c.rtt-last)*0.25
			c.recv.SetNAKInterval(uint64(max((c.rtt+4*c.rttVar)/2, 20_000)))
		}
		c.driftSample(now, h.Timestamp)
		for n := range c.acks {
			if n <= h.TypeSpecific {
				delete(c.acks, n)
			}
		}
		p.Decommission()
	case h.ControlType == packet.CTRLTYPE_USER && h.SubType == packet.EXTTYPE_KMREQ:
		c.refreshKey(p, now)
	default: // keepalive (lastHeard is enough); ACK and NAK: nothing is sent here
		p.Decommission()
	}
}

// refreshKey takes the caller's next key (sent before it switches, every 2^24 packets
// by default) and confirms it; it frees p. Deriving a key costs half a millisecond on
// the reader that every publisher shares, so a connection gets one a second; the
// caller repeats an unanswered request. The key material is tried on a scratch
// instance first: gosrt's keeps a failed one's salt.
func (c *Conn) refreshKey(p packet.Packet, now time.Time) {
	defer p.Decommission()
	km := &packet.CIFKeyMaterialExtension{}
	if c.crypto == nil || now.Sub(c.lastKey) < time.Second || unmarshalCIF(p, km) != nil {
		return
	}
	c.lastKey = now
	scratch, err := crypto.New(int(km.KLen))
	if err != nil || scratch.UnmarshalKM(km, c.passphrase) != nil || c.crypto.UnmarshalKM(km, c.passphrase) != nil {
		return
	}
	h := p.Header()
	h.SubType = packet.EXTTYPE_KMRSP
	h.DestinationSocketId = c.peerID
	h.Timestamp = c.timestamp(now)
	var b bytes.Buffer
	if p.Marshal(&b) == nil {
		c.l.write(b.Bytes(), c.peer, c.src)
		c.lastSent = now
	}
}

// timestamp is the time since the connection began, as SRT's headers carry it.
func (c *Conn) timestamp(now time.Time) uint32 {
	return uint32(now.Sub(c.start).Microseconds())
}

// controlPacket is an empty control packet of type t to the peer.
func (c *Conn) controlPacket(t packet.CtrlType, now time.Time) packet.Packet {
	p := packet.NewPacket(nil)
	h := p.Header()
	h.IsControlPacket = true
	h.ControlType = t
	h.Timestamp = c.timestamp(now)
	h.DestinationSocketId = c.peerID
	return p
}

// sendACK is the receiver's ACK (pmu is held).
func (c *Conn) sendACK(seq circular.Number, lite bool) {
	now := time.Now()
	p := c.controlPacket(packet.CTRLTYPE_ACK, now)
	cif := packet.CIFACK{LastACKPacketSequenceNumber: seq, IsLite: lite}
	if !lite {
		pps, bps, capacity := c.recv.PacketRate()
		cif.RTT, cif.RTTVar = uint32(c.rtt), uint32(c.rttVar)
		cif.AvailableBufferSize = 8192
		cif.PacketsReceivingRate, cif.EstimatedLinkCapacity, cif.ReceivingRate = uint32(pps), uint32(capacity), uint32(bps)
		p.Header().TypeSpecific = c.nextACK
		if len(c.acks) > 1000 { // ACKACKs lost for 10 s: forget them
			clear(c.acks)
		}
		c.acks[c.nextACK] = now
		if c.nextACK++; c.nextACK == 0 {
			c.nextACK = 1
		}
	}
	_ = p.MarshalCIF(&cif)
	c.l.send(p, c.peer, c.src)
	c.lastSent = now
}

// sendNAK is the receiver's loss report (pmu is held).
func (c *Conn) sendNAK(list []circular.Number) {
	now := time.Now()
	p := c.controlPacket(packet.CTRLTYPE_NAK, now)
	_ = p.MarshalCIF(&packet.CIFNAK{LostPacketSequenceNumber: list})
	c.l.send(p, c.peer, c.src)
	c.lastSent = now
}

// deliver hands a packet's payload to Read (pmu is held); it frees p.
func (c *Conn) deliver(p packet.Packet) {
	c.mu.Lock()
	if c.buf.Len() < maxBuffered {
		c.buf.Write(p.Data())
	} else {
		c.overflow++
	}
	c.mu.Unlock()
	p.Decommission()
	c.delivered = true
}

// housekeep delivers a stalled stream's tail, keeps the peer's link alive and ends a
// connection whose peer went silent.
func (c *Conn) housekeep(now time.Time) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if now.Sub(c.lastHeard) > c.l.cfg.PeerIdleTimeout {
		go c.close(true)
		return
	}
	c.tick(now, true)
	if now.Sub(c.lastSent) >= time.Second {
		c.l.send(c.controlPacket(packet.CTRLTYPE_KEEPALIVE, now), c.peer, c.src)
		c.lastSent = now
	}
}

// Read reads the stream's bytes; it returns io.EOF once the connection is closed.
func (c *Conn) Read(b []byte) (int, error) {
	for {
		c.mu.Lock()
		if c.buf.Len() > 0 {
			n, _ := c.buf.Read(b)
			c.mu.Unlock()
			return n, nil
		}
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return 0, io.EOF
		}
		select {
		case <-c.ready:
		case <-c.done:
		}
	}
}

// Close ends the connection and tells the peer.
func (c *Conn) Close() error {
	c.close(true)
	return nil
}

func (c *Conn) close(tell bool) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.done)
		c.l.forget(c.id, c.peerID, c)
		if tell {
			now := time.Now()
			p := c.controlPacket(packet.CTRLTYPE_SHUTDOWN, now)
			_ = p.MarshalCIF(&packet.CIFShutdown{})
			c.l.send(p, c.peer, c.src)
		}
	})
}

// Stats is what SRT counted of a connection's link since it began.
type Stats struct {
	Received      uint64        // data packets, retransmissions included
	Lost          uint64        // found missing (each NAKed)
	Retransmitted uint64        // received again after a NAK
	Dropped       uint64        // too late, duplicates, or over the reader's buffer
	Undecrypted   uint64        // packets that did not decrypt
	RTT           time.Duration // smoothed round-trip time
}

// Stats returns the connection's statistics as they are now.
func (c *Conn) Stats() Stats {
	r := c.recv.Stats()
	c.pmu.Lock()
	rtt := time.Duration(c.rtt) * time.Microsecond
	c.pmu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Received: r.Pkt, Lost: r.PktLoss, Retransmitted: r.PktRetrans, Dropped: r.PktDrop + c.overflow,
		Undecrypted: c.undecrypted, RTT: rtt}
}

// RemoteAddr is the publisher's address.
func (c *Conn) RemoteAddr() net.Addr { return net.UDPAddrFromAddrPort(c.peer) }

// LocalAddr is the listener's address.
func (c *Conn) LocalAddr() net.Addr { return c.l.Addr() }

// errReceiveOnly is Write's answer: the listener takes publishers only.
var errReceiveOnly = errors.New("srt: this connection only receives")

// Write fails: a publisher's connection only receives.
func (c *Conn) Write([]byte) (int, error) { return 0, errReceiveOnly }

// SetDeadline and its kin are not supported: a connection ends by Close, or by its
// peer's silence (Config.PeerIdleTimeout).
func (c *Conn) SetDeadline(time.Time) error      { return errors.ErrUnsupported }
func (c *Conn) SetReadDeadline(time.Time) error  { return errors.ErrUnsupported }
func (c *Conn) SetWriteDeadline(time.Time) error { return errors.ErrUnsupported }
