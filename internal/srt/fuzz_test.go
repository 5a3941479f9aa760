package srt_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/datarhei/gosrt/circular"
	"github.com/datarhei/gosrt/packet"

	"github.com/transcoderd/transcoderd/internal/srt"
)

// caller is the address the fuzzed datagrams come from (the discard port: the
// listener's answers go nowhere).
var caller = netip.MustParseAddrPort("127.0.0.1:9")

// conclusion is a caller's HSv5 conclusion with stream id sid.
func conclusion(cookie uint32, sid string) []byte {
	cif := &packet.CIFHandshake{
		IsRequest: true, Version: 5, ExtensionField: 0, HandshakeType: packet.HSTYPE_CONCLUSION,
		InitialPacketSequenceNumber: circular.New(100, packet.MAX_SEQUENCENUMBER),
		MaxTransmissionUnitSize:     1500, MaxFlowWindowSize: 8192, SRTSocketId: 0x1234, SynCookie: cookie,
		HasHS: true, HasSID: true, StreamId: sid,
		SRTHS: &packet.CIFHandshakeExtension{SRTVersion: 0x010501, RecvTSBPDDelay: 120, SendTSBPDDelay: 120},
	}
	f := &cif.SRTHS.SRTFlags
	f.TSBPDSND, f.TSBPDRCV, f.TLPKTDROP, f.PERIODICNAK, f.REXMITFLG = true, true, true, true, true
	return controlBytes(packet.CTRLTYPE_HANDSHAKE, 0, 0, cif)
}

func controlBytes(t packet.CtrlType, typeSpecific, dest uint32, cif packet.CIF) []byte {
	p := packet.NewPacket(nil)
	h := p.Header()
	h.IsControlPacket, h.ControlType, h.TypeSpecific, h.DestinationSocketId = true, t, typeSpecific, dest
	if cif != nil {
		_ = p.MarshalCIF(cif)
	}
	var b bytes.Buffer
	_ = p.Marshal(&b)
	return b.Bytes()
}

// dataBytes is a data packet of sequence number seq to dest.
func dataBytes(seq, dest uint32, payload []byte) []byte {
	b := make([]byte, 16, 16+len(payload))
	binary.BigEndian.PutUint32(b[0:], seq&0x7fffffff)
	binary.BigEndian.PutUint32(b[4:], 0xc0000001) // a whole message, number 1
	binary.BigEndian.PutUint32(b[8:], seq*1000)
	binary.BigEndian.PutUint32(b[12:], dest)
	return append(b, payload...)
}

// injectedConn is a listener (closed at the test's end) with one connection, accepted
// from a conclusion with stream id sid injected from caller at began.
func injectedConn(tb testing.TB, sid string, began time.Time) (*srt.Listener, *srt.Conn) {
	tb.Helper()
	l, err := srt.Listen("127.0.0.1:0", srt.Config{PeerIdleTimeout: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	l.InjectAt(conclusion(l.Cookie(caller), sid), caller, began)
	r, err := l.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	c, err := r.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	return l, c
}

// FuzzPacket feeds any datagram to a listener with one accepted connection, as the
// Internet may: it must neither panic nor hang. The first byte of an input chooses
// whether the rest is addressed to that connection.
func FuzzPacket(f *testing.F) {
	l, c := injectedConn(f, "publish:fuzz", time.Now())
	go func() { _, _ = bytes.NewBuffer(nil).ReadFrom(c) }()

	f.Add(append([]byte{1}, dataBytes(100, 0, bytes.Repeat([]byte{0x47}, 188))...))
	f.Add(append([]byte{1}, dataBytes(140, 0, bytes.Repeat([]byte{0x47}, 188))...)) // a gap: NAK
	f.Add(append([]byte{1}, controlBytes(packet.CTRLTYPE_ACKACK, 1, 0, nil)...))
	f.Add(append([]byte{1}, controlBytes(packet.CTRLTYPE_KEEPALIVE, 0, 0, nil)...))
	f.Add(append([]byte{1}, controlBytes(packet.CTRLTYPE_USER, 0, 0, &packet.CIFKeyMaterialExtension{})...))
	f.Add(append([]byte{0}, conclusion(0, "publish:x")...))
	f.Add(append([]byte{0}, controlBytes(packet.CTRLTYPE_HANDSHAKE, 0, 0, &packet.CIFHandshake{IsRequest: true, Version: 4, ExtensionField: 2, HandshakeType: packet.HSTYPE_INDUCTION})...))
	f.Add([]byte{0, 0x80, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		data := append([]byte(nil), in[1:]...)
		if in[0]&1 == 1 && len(data) >= 16 {
			binary.BigEndian.PutUint32(data[12:], c.ID())
		}
		l.Inject(data, caller)
	})
}

// TestDriftFollowsCallerClock: ACKACKs stamped by a caller whose clock runs 2000 ppm
// slow (exaggerated, to show in 10 s of samples) move the time base after it; a caller
// in step moves nothing.
func TestDriftFollowsCallerClock(t *testing.T) {
	for _, c := range []struct {
		name     string
		ppm      float64
		min, max int64
	}{{"in step", 0, 0, 0}, {"slow", 2000, 8_000, 12_000}, {"fast", -2000, -12_000, -8_000}} {
		t.Run(c.name, func(t *testing.T) {
			began := time.Now()
			l, conn := injectedConn(t, "publish:drift", began)
			for i := range 1000 { // one ACKACK per 10 ms, 10 s
				at := began.Add(time.Duration(i) * 10 * time.Millisecond)
				ts := uint32(float64(at.Sub(began).Microseconds()) * (1 - c.ppm/1e6))
				b := controlBytes(packet.CTRLTYPE_ACKACK, uint32(i+1), conn.ID(), nil)
				binary.BigEndian.PutUint32(b[8:], ts)
				l.InjectAt(b, caller, at)
			}
			if d := conn.Drift(); d < c.min || d > c.max {
				t.Errorf("time base moved %d µs, want %d to %d", d, c.min, c.max)
			}
		})
	}
}
