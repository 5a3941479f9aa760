package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// tsReader demuxes the MPEG-TS an SRT publisher sends: the elementary streams of the
// first program its PAT names, H.264, H.265 and AAC (ADTS) handed on as mediacommon's
// mpegts.Reader hands them on (the same access units, timestamps and order: its tests
// compare the two). mediacommon's reader, through astits, rescans a PES's packets for
// each one added and allocates per packet: 0.9 % of a core for a 6 Mbit/s stream, where
// this reader takes a tenth of that.
type tsReader struct {
	r       io.Reader
	buf     []byte // read from r: buf[pos:end] is not yet demuxed
	pos     int
	end     int
	replay  []byte // what Initialize read, demuxed again by Read
	pmtPID  int    // -1 until the PAT names it
	pmt     []byte // a PMT section spanning packets, as far as it came
	tracks  []*tsTrack
	onError func(error)
}

// tsTrack is one elementary stream of the program, and its PES as far as it came.
type tsTrack struct {
	pid        uint16
	codec      tscodecs.Codec // nil: a stream type this reader does not hand on
	pes        []byte
	pesLen     int // the whole PES's length when its header gives one; 0: until the next
	cc         int // the last continuity counter; -1: none yet (or lost: wait for a start)
	onData     func(pts, dts int64, data []byte) error
	audioFound bool // the AAC config was read (Initialize)
}

// maxTrackSearch bounds what Initialize reads (and keeps) to find the tracks: an AAC
// track whose first frame has not come by then is left out.
const maxTrackSearch = 16 << 20

// errNoProgram is a stream that ended before its PAT and PMT.
var errNoProgram = errors.New("mpeg-ts: no program found")

func newTSReader(r io.Reader) *tsReader {
	return &tsReader{r: r, buf: make([]byte, 64*tsPacket), pmtPID: -1, onError: func(error) {}}
}

// Initialize reads until the program's tracks are known: its PMT, and the first ADTS
// header of each AAC track (its sample rate and channels). What it read is demuxed
// again by Read.
func (d *tsReader) Initialize() error {
	var seen []byte
	for !d.ready() {
		pkt, err := d.next()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return errNoProgram
			}
			return err
		}
		seen = append(seen, pkt...)
		d.packet(pkt)
		if len(seen) > maxTrackSearch {
			d.dropSilentAudio()
		}
	}
	for _, t := range d.tracks {
		t.pes, t.pesLen, t.cc = nil, 0, -1
	}
	d.replay = seen
	return nil
}

// ready reports whether every track is known.
func (d *tsReader) ready() bool {
	if d.tracks == nil {
		return false
	}
	for _, t := range d.tracks {
		if _, aac := t.codec.(*tscodecs.MPEG4Audio); aac && !t.audioFound {
			return false
		}
	}
	return true
}

// dropSilentAudio leaves out the AAC tracks whose config is not known yet.
func (d *tsReader) dropSilentAudio() {
	for _, t := range d.tracks {
		if _, aac := t.codec.(*tscodecs.MPEG4Audio); aac && !t.audioFound {
			t.codec = nil
		}
	}
}

// Tracks returns the program's tracks that this reader hands on.
func (d *tsReader) Tracks() []*tsTrack {
	var out []*tsTrack
	for _, t := range d.tracks {
		if t.codec != nil {
			out = append(out, t)
		}
	}
	return out
}

// OnDecodeError sets what is told of damaged data (which is skipped).
func (d *tsReader) OnDecodeError(f func(error)) { d.onError = f }

// OnDataH264 and OnDataH265 hand on t's access units as NAL units, without a leading
// access unit delimiter.
func (d *tsReader) OnDataH264(t *tsTrack, f func(pts, dts int64, au [][]byte) error) {
	d.onVideo(t, byte(h264.NALUTypeAccessUnitDelimiter), f)
}

func (d *tsReader) OnDataH265(t *tsTrack, f func(pts, dts int64, au [][]byte) error) {
	d.onVideo(t, byte(h265.NALUType_AUD_NUT<<1), f)
}

func (d *tsReader) onVideo(t *tsTrack, aud byte, f func(pts, dts int64, au [][]byte) error) {
	t.onData = func(pts, dts int64, data []byte) error {
		var au h264.AnnexB
		if err := au.Unmarshal(data); err != nil {
			d.onError(err)
			return nil
		}
		if au[0][0] == aud {
			if au = au[1:]; len(au) == 0 {
				d.onError(errors.New("empty access unit"))
				return nil
			}
		}
		return f(pts, dts, au)
	}
}

// OnDataMPEG4Audio hands on t's AAC frames, without their ADTS headers.
func (d *tsReader) OnDataMPEG4Audio(t *tsTrack, f func(pts int64, aus [][]byte) error) {
	t.onData = func(pts, dts int64, data []byte) error {
		if pts != dts {
			d.onError(errors.New("PTS is not equal to DTS"))
			return nil
		}
		var pkts mpeg4audio.ADTSPackets
		if err := pkts.Unmarshal(data); err != nil {
			d.onError(fmt.Errorf("invalid ADTS: %w", err))
			return nil
		}
		aus := make([][]byte, len(pkts))
		for i, p := range pkts {
			aus[i] = p.AU
		}
		return f(pts, aus)
	}
}

// Read demuxes the next packet, handing on a PES it completes; it returns r's error
// (io.EOF) once r ends.
func (d *tsReader) Read() error {
	if len(d.replay) >= tsPacket {
		pkt := d.replay[:tsPacket]
		d.replay = d.replay[tsPacket:]
		return d.packet(pkt)
	}
	pkt, err := d.next()
	if err != nil {
		for _, t := range d.tracks { // r ended: the last PES is whole
			if ferr := d.flush(t); ferr != nil {
				return ferr
			}
		}
		return err
	}
	return d.packet(pkt)
}

// next returns the next 188-byte packet from r, found again by its sync byte after
// damage. The packet is valid until the next call.
func (d *tsReader) next() ([]byte, error) {
	for {
		for d.end-d.pos >= tsPacket {
			if d.buf[d.pos] == 0x47 {
				pkt := d.buf[d.pos : d.pos+tsPacket]
				d.pos += tsPacket
				return pkt, nil
			}
			d.pos++ // lost sync: look for the next sync byte
		}
		copy(d.buf, d.buf[d.pos:d.end])
		d.end -= d.pos
		d.pos = 0
		n, err := d.r.Read(d.buf[d.end:])
		d.end += n
		if n == 0 && err != nil {
			return nil, err
		}
	}
}

// packet demuxes one packet.
func (d *tsReader) packet(pkt []byte) error {
	pid := uint16(pkt[1]&0x1f)<<8 | uint16(pkt[2])
	start := pkt[1]&0x40 != 0
	cc := int(pkt[3] & 0x0f)
	payload := pkt[4:]
	if pkt[3]&0x20 != 0 { // adaptation field
		n := int(pkt[4]) + 1
		if n > len(payload) {
			d.onError(errors.New("mpeg-ts: adaptation field longer than its packet"))
			return nil
		}
		payload = payload[n:]
	}
	if pkt[3]&0x10 == 0 || pkt[1]&0x80 != 0 { // no payload, or marked damaged
		return nil
	}
	switch {
	case pid == 0:
		d.pat(payload, start)
	case int(pid) == d.pmtPID:
		d.pmtPacket(payload, start)
	default:
		for _, t := range d.tracks {
			if t.pid == pid {
				return d.esPacket(t, payload, start, cc)
			}
		}
	}
	return nil
}

// section returns the PSI section that starts in a payload, after its pointer field.
func section(payload []byte) []byte {
	if len(payload) == 0 || int(payload[0])+1 > len(payload) {
		return nil
	}
	return payload[1+int(payload[0]):]
}

// pat takes the PMT's PID of the first program (not the network PID, program 0).
func (d *tsReader) pat(payload []byte, start bool) {
	s := section(payload)
	if !start || d.pmtPID >= 0 || len(s) < 8 || s[0] != 0x00 {
		return
	}
	n := int(s[1]&0x0f)<<8 | int(s[2]) // section length, from after it
	end := min(len(s), 3+n-4)          // less the CRC
	if end < 8 {
		return
	}
	entries := s[8:end]
	for i := 0; i+4 <= len(entries); i += 4 {
		if program := int(entries[i])<<8 | int(entries[i+1]); program != 0 {
			d.pmtPID = int(entries[i+2]&0x1f)<<8 | int(entries[i+3])
			return
		}
	}
}

// pmtPacket gathers the program's PMT (once) and takes its tracks.
func (d *tsReader) pmtPacket(payload []byte, start bool) {
	if d.tracks != nil {
		return
	}
	if start {
		d.pmt = append(d.pmt[:0], section(payload)...)
	} else if len(d.pmt) > 0 {
		d.pmt = append(d.pmt, payload...)
	}
	if len(d.pmt) < 3 {
		return
	}
	n := 3 + (int(d.pmt[1]&0x0f)<<8 | int(d.pmt[2]))
	if len(d.pmt) < n {
		return // the rest is in the next packets
	}
	s := d.pmt[:n]
	d.pmt = nil
	if s[0] != 0x02 || n < 16 {
		d.onError(errors.New("mpeg-ts: not a PMT"))
		return
	}
	info := 12 + (int(s[10]&0x0f)<<8 | int(s[11]))
	if info > n-4 {
		d.onError(errors.New("mpeg-ts: PMT program info longer than its section"))
		return
	}
	d.tracks = []*tsTrack{}
	es := s[info : n-4]
	for len(es) >= 5 {
		t := &tsTrack{pid: uint16(es[1]&0x1f)<<8 | uint16(es[2]), cc: -1}
		switch es[0] {
		case 0x1b:
			t.codec = &tscodecs.H264{}
		case 0x24:
			t.codec = &tscodecs.H265{}
		case 0x0f:
			t.codec = &tscodecs.MPEG4Audio{}
		}
		d.tracks = append(d.tracks, t)
		es = es[min(len(es), 5+(int(es[3]&0x0f)<<8|int(es[4]))):]
	}
}

// esPacket adds a packet to its track's PES, handing on the PES it completes: at the
// next start, or once it has the length its header gave.
func (d *tsReader) esPacket(t *tsTrack, payload []byte, start bool, cc int) error {
	switch {
	case t.cc >= 0 && cc == t.cc && !start:
		return nil // a duplicate packet
	case t.cc >= 0 && cc != (t.cc+1)&0x0f && !start:
		d.onError(fmt.Errorf("mpeg-ts: packets lost on PID %d", t.pid))
		t.pes, t.cc = t.pes[:0], -1 // the PES is broken (never handed on): wait for the next start
		return nil
	}
	var err error
	if start {
		err = d.flush(t)
		t.pes = append(t.pes[:0], payload...)
		t.pesLen = 0
		if len(payload) >= 6 {
			if n := int(payload[4])<<8 | int(payload[5]); n > 0 {
				t.pesLen = 6 + n
			}
		}
	} else if t.cc >= 0 {
		t.pes = append(t.pes, payload...)
	}
	t.cc = cc
	if t.pesLen > 0 && len(t.pes) >= t.pesLen {
		if ferr := d.flush(t); err == nil {
			err = ferr
		}
	}
	return err
}

// flush hands on t's PES, if it has one. The units handed on keep its bytes (the GOP
// cache holds them): they get a copy of its size, and t's buffer is used again.
func (d *tsReader) flush(t *tsTrack) error {
	pes := bytes.Clone(t.pes)
	t.pes, t.pesLen = t.pes[:0], 0
	if len(pes) == 0 {
		return nil
	}
	pts, dts, data, err := parsePES(pes)
	if err != nil {
		d.onError(err)
		return nil
	}
	if a, ok := t.codec.(*tscodecs.MPEG4Audio); ok && !t.audioFound {
		var pkts mpeg4audio.ADTSPackets
		if err := pkts.Unmarshal(data); err != nil {
			d.onError(fmt.Errorf("invalid ADTS: %w", err))
			return nil
		}
		p := pkts[0]
		a.Config = mpeg4audio.AudioSpecificConfig{Type: p.Type, SampleRate: p.SampleRate, ChannelConfig: p.ChannelConfig,
			ChannelCount: p.ChannelCount} //nolint:staticcheck // as mediacommon fills it
		t.audioFound = true
	}
	if t.onData == nil {
		return nil
	}
	return t.onData(pts, dts, data)
}

// parsePES returns a PES packet's timestamps (DTS is PTS when absent) and data.
func parsePES(b []byte) (pts, dts int64, data []byte, err error) {
	if len(b) < 9 || b[0] != 0 || b[1] != 0 || b[2] != 1 {
		return 0, 0, nil, errors.New("mpeg-ts: PES without a start code")
	}
	hdr := 9 + int(b[8])
	if hdr > len(b) || b[7]&0x80 == 0 || len(b) < 14 {
		return 0, 0, nil, errors.New("PTS is missing")
	}
	pts = timestamp(b[9:14])
	dts = pts
	if b[7]&0x40 != 0 && len(b) >= 19 {
		dts = timestamp(b[14:19])
	}
	end := len(b)
	if n := int(b[4])<<8 | int(b[5]); n > 0 && 6+n < end {
		end = 6 + n
	}
	return pts, dts, b[hdr:end], nil
}

// timestamp decodes a 33-bit PES timestamp.
func timestamp(b []byte) int64 {
	return int64(b[0]>>1&0x07)<<30 | int64(b[1])<<22 | int64(b[2]>>1)<<15 | int64(b[3])<<7 | int64(b[4]>>1)
}
