package ingest

import (
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// tsMuxer writes a publisher's units as MPEG-TS (ISO/IEC 13818-1) onto the end of a
// byte slice: H.264 or H.265 video in Annex B with an access unit delimiter, AAC audio
// in ADTS, a PCR on the video (or the audio, without video), the PAT and PMT before
// each random access point of that track and every 40 PES packets. It writes what
// mediacommon's mpegts.Writer writes for these codecs, byte for byte but the PMT's
// version (TestTSMuxer), without its allocation per unit: its Annex B copy of each
// access unit, astits's packet structs and bit writer, most of what the hub cost per
// frame. A muxer is used by one goroutine at a time.
type tsMuxer struct {
	video, audio uint16 // the tracks' PIDs; 0 for none
	hevc         bool
	pcr          uint16   // the PID that carries the PCR
	pcrIn        int      // PES packets to the next PCR
	adts         [7]byte  // the ADTS header of the audio, but the frame's length
	cc           [3]uint8 // continuity counters: PMT, video, audio
	patCC        uint8    // and the PAT's
	sinceTables  int      // PES packets since the tables were last sent
	pes          []byte   // a PES packet, reused
}

// MPEG-TS layout, as mediacommon's writer (and astits) lays it out.
const (
	tsPacket     = 188
	tsPMTPID     = 0x1000
	tsFirstPID   = 256
	tsVideoID    = 0xE0 // PES stream ids
	tsAudioID    = 0xC0
	tsPCRBehind  = 90000 / 10 // the PCR runs 100 ms behind the DTS
	tsPCREvery   = 3          // PES packets of the PCR's track between two PCRs, at most
	tsTableEvery = 40         // PES packets between two sendings of the tables, at most
	tsTimeMask   = 1<<33 - 1
)

// newTSMuxer makes the muxer of tr's tracks: video first, audio after, as the
// tracks' PIDs are numbered.
func newTSMuxer(tr tracks) (*tsMuxer, error) {
	m := &tsMuxer{sinceTables: tsTableEvery} // sent again before the first unit, as astits does
	pid := uint16(tsFirstPID)
	switch tr.video.(type) {
	case nil:
	case *tscodecs.H264:
		m.video, pid = pid, pid+1
	case *tscodecs.H265:
		m.video, m.hevc, pid = pid, true, pid+1
	default:
		return nil, fmt.Errorf("mpeg-ts: video codec %T not supported", tr.video)
	}
	switch a := tr.audio.(type) {
	case nil:
	case *tscodecs.MPEG4Audio:
		h, err := adtsHeader(a.Config)
		if err != nil {
			return nil, err
		}
		m.audio, m.adts = pid, h
	default:
		return nil, fmt.Errorf("mpeg-ts: audio codec %T not supported", tr.audio)
	}
	if m.pcr = m.video; m.pcr == 0 {
		m.pcr = m.audio
	}
	if m.pcr == 0 {
		return nil, errors.New("mpeg-ts: no track")
	}
	return m, nil
}

// adtsHeader is the ADTS header of conf's frames, with a frame length of 0.
func adtsHeader(conf mpeg4audio.AudioSpecificConfig) ([7]byte, error) {
	var h [7]byte
	b, err := mpeg4audio.ADTSPackets{{
		Type: conf.Type, SampleRate: conf.SampleRate, ChannelConfig: conf.ChannelConfig,
		ChannelCount: conf.ChannelCount, //nolint:staticcheck // what the config may still carry
	}}.Marshal()
	if err != nil {
		return h, fmt.Errorf("mpeg-ts: aac config: %w", err)
	}
	copy(h[:], b)
	h[3] &^= 0x03 // the frame length: bits 30-42 of the header, set per frame
	h[4], h[5] = 0, h[5]&0x1F
	return h, nil
}

// writeTables appends the PAT and the PMT.
func (m *tsMuxer) writeTables(dst []byte) []byte {
	pat := []byte{0x00, 0x01, 0xE0 | tsPMTPID>>8, tsPMTPID & 0xFF} // program 1: the PMT
	dst = m.section(dst, 0, &m.patCC, 0x00, 0, pat)
	pmt := []byte{0xE0 | byte(m.pcr>>8), byte(m.pcr), 0xF0, 0x00} // the PCR's PID, no program info
	if m.video != 0 {
		typ := byte(0x1B) // H.264
		if m.hevc {
			typ = 0x24
		}
		pmt = append(pmt, typ, 0xE0|byte(m.video>>8), byte(m.video), 0xF0, 0x00)
	}
	if m.audio != 0 {
		pmt = append(pmt, 0x0F, 0xE0|byte(m.audio>>8), byte(m.audio), 0xF0, 0x00) // AAC in ADTS
	}
	return m.section(dst, tsPMTPID, &m.cc[0], 0x02, 1, pmt)
}

// section appends a packet of one PSI section: table id, table id extension (the
// transport stream's or the program's number), body, CRC.
func (m *tsMuxer) section(dst []byte, pid uint16, cc *uint8, table byte, ext uint16, body []byte) []byte {
	n := 5 + len(body) + 4 // after the length: extension, version, numbers; body; CRC
	start := len(dst)
	dst = append(dst, 0x47, 0x40|byte(pid>>8), byte(pid), 0x10|*cc&0x0F, 0x00, // payload start, pointer 0
		table, 0xB0|byte(n>>8), byte(n), byte(ext>>8), byte(ext), 0xC1, 0x00, 0x00)
	*cc++
	dst = append(dst, body...)
	crc := crc32MPEG(dst[start+5:])
	dst = append(dst, byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc))
	for len(dst)-start < tsPacket {
		dst = append(dst, 0xFF)
	}
	return dst
}

// writeUnit appends u, in one PES packet, as MPEG-TS packets.
func (m *tsMuxer) writeUnit(dst []byte, u unit) []byte {
	pid, id := m.video, byte(tsVideoID)
	if !u.video {
		pid, id = m.audio, tsAudioID
	}
	if pid == 0 {
		return dst // a track the stream does not have
	}
	random := !u.video || u.key
	if m.sinceTables++; m.sinceTables >= tsTableEvery || pid == m.pcr && random {
		dst = m.writeTables(dst)
		m.sinceTables = 0
	}
	m.pes = m.appendPES(m.pes[:0], id, u)
	pcr := int64(-1)
	if pid == m.pcr {
		if (u.video && u.key) || m.pcrIn <= 0 {
			pcr, m.pcrIn = (u.dts-tsPCRBehind)&tsTimeMask, tsPCREvery
		}
		m.pcrIn--
	}
	cc := &m.cc[1]
	if !u.video {
		cc = &m.cc[2]
	}
	return m.packetize(dst, pid, cc, random, pcr, m.pes)
}

// appendPES appends the PES packet of u: header, then its payload.
func (m *tsMuxer) appendPES(dst []byte, id byte, u unit) []byte {
	start := len(dst)
	flags, hlen := byte(0x80), byte(5) // PTS only
	if u.dts != u.pts {
		flags, hlen = 0xC0, 10
	}
	dst = append(dst, 0x00, 0x00, 0x01, id, 0, 0, 0x80, flags, hlen)
	if flags == 0x80 {
		dst = appendTimestamp(dst, 0x2, u.pts)
	} else {
		dst = appendTimestamp(dst, 0x3, u.pts)
		dst = appendTimestamp(dst, 0x1, u.dts)
	}
	if u.video {
		dst = m.appendAnnexB(dst, u.data)
	} else {
		for _, f := range u.data {
			n := len(f) + 7
			h := m.adts
			h[3] |= byte(n>>11) & 0x03
			h[4] = byte(n >> 3)
			h[5] |= byte(n&0x07) << 5
			dst = append(append(dst, h[:]...), f...)
		}
	}
	// The PES packet's length counts what follows it; a video one's is left 0, as
	// mediacommon leaves it (allowed for video alone, which may have more than its
	// 16 bits hold).
	if n := len(dst) - start - 6; !u.video {
		dst[start+4], dst[start+5] = byte(n>>8), byte(n)
	}
	return dst
}

// appendAnnexB appends the NAL units of au with start codes, after an access unit
// delimiter unless au begins with one.
func (m *tsMuxer) appendAnnexB(dst []byte, au [][]byte) []byte {
	switch {
	case m.hevc && (len(au) == 0 || au[0][0] != 35<<1):
		dst = append(dst, 0, 0, 0, 1, 35<<1, 1, 0x50) // AUD_NUT, any slice type
	case !m.hevc && (len(au) == 0 || au[0][0] != 9):
		dst = append(dst, 0, 0, 0, 1, 9, 0xF0) // AUD, any primary picture type
	}
	for _, n := range au {
		dst = append(append(dst, 0, 0, 0, 1), n...)
	}
	return dst
}

// appendTimestamp appends a PES timestamp (33 bits, with marker bits) after prefix.
func appendTimestamp(dst []byte, prefix byte, t int64) []byte {
	t &= tsTimeMask
	return append(dst, prefix<<4|byte(t>>29)&0x0E|1, byte(t>>22), byte(t>>14)|1, byte(t>>7), byte(t<<1)|1)
}

// packetize appends pes as the payload of MPEG-TS packets of pid. The first has the
// payload start flag, the random access flag when random, and the PCR when pcr is
// not -1; the last is filled out with adaptation field stuffing.
func (m *tsMuxer) packetize(dst []byte, pid uint16, cc *uint8, random bool, pcr int64, pes []byte) []byte {
	for first := true; len(pes) > 0; first = false {
		var fields [7]byte // the adaptation field after its length: flags, PCR
		af := fields[:0]
		if first && (random || pcr >= 0) {
			af = fields[:1]
			if random {
				fields[0] |= 0x40
			}
			if pcr >= 0 {
				fields[0] |= 0x10
				af = append(af, byte(pcr>>25), byte(pcr>>17), byte(pcr>>9), byte(pcr>>1), byte(pcr<<7)|0x7E, 0)
			}
		}
		room := tsPacket - 4
		if len(af) > 0 {
			room -= 1 + len(af)
		}
		n := min(len(pes), room)
		stuff := room - n // the last packet's: an adaptation field fills it out
		if stuff > 0 && len(af) == 0 {
			stuff-- // the field's length byte
			if stuff > 0 {
				af, stuff = fields[:1], stuff-1 // and its flags, none set
			}
		}
		head, start := byte(0x10), byte(0) // payload only; not its start
		if len(af) > 0 || n < tsPacket-4 {
			head = 0x30 // an adaptation field, then payload
		}
		if first {
			start = 0x40
		}
		dst = append(dst, 0x47, start|byte(pid>>8), byte(pid), head|*cc&0x0F)
		*cc++
		if head == 0x30 {
			dst = append(dst, byte(len(af)+stuff))
			dst = append(dst, af...)
			for range stuff {
				dst = append(dst, 0xFF)
			}
		}
		dst = append(dst, pes[:n]...)
		pes = pes[n:]
	}
	return dst
}

// crc32MPEG is the CRC of MPEG-2 sections: polynomial 0x04C11DB7, not reflected,
// starting from all ones, not inverted.
func crc32MPEG(b []byte) uint32 {
	crc := uint32(0xFFFFFFFF)
	for _, c := range b {
		crc = crc<<8 ^ crcTable[byte(crc>>24)^c]
	}
	return crc
}

var crcTable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04C11DB7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()
