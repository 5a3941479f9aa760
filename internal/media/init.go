// Package media reads what the daemon needs from CMAF (fragmented MP4) init
// and media segments: codec strings for manifests, timescales, picture and
// audio parameters, and per-segment timing, sample counts and keyframe flags.
// It decodes boxes with github.com/Eyevinn/mp4ff and never panics on input:
// anything malformed or truncated comes back as an error.
package media

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/Eyevinn/mp4ff/aac"
	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/transcoderd/transcoderd/internal/fileio"
)

// ErrUnsupported is returned (wrapped) for well-formed input this package
// does not describe: a handler other than video or audio, or a sample entry
// whose codec string it cannot build.
var ErrUnsupported = errors.New("unsupported")

// Init describes the single track of a CMAF init segment (ftyp + moov).
type Init struct {
	// Video is true for a video track ("vide" handler) and false for audio ("soun").
	Video bool
	// Codecs is the RFC 6381 codecs parameter, e.g. "avc1.64001f",
	// "hvc1.1.6.L93.B0" or "mp4a.40.2".
	Codecs string
	// Timescale is the media timescale from mdhd, in ticks per second.
	Timescale uint32
	// TrackID is the track_ID from tkhd.
	TrackID uint32
	// Width and Height are the coded picture size from the visual sample
	// entry (falling back to tkhd). Zero for audio.
	Width, Height int
	// Channels and SampleRate come from the audio sample entry (falling back
	// to the AudioSpecificConfig). Zero for video.
	Channels   int
	SampleRate int

	// defaults are the trex defaults for TrackID, used by ParseSegment.
	defaults sampleDefaults
}

// sampleDefaults are the per-sample defaults of a trex box.
type sampleDefaults struct {
	duration, size, flags uint32
}

// ParseInitFile reads the init segment at path and parses it with ParseInit.
func ParseInitFile(path string) (Init, error) {
	data, err := fileio.ReadFile(path)
	if err != nil {
		return Init{}, fmt.Errorf("read init segment: %w", err)
	}
	in, err := ParseInit(data)
	if err != nil {
		return Init{}, fmt.Errorf("%s: %w", path, err)
	}
	return in, nil
}

// ParseInit parses a CMAF init segment: a moov holding exactly one track and
// an mvex (so the file is fragmented). Media segments that follow may be
// parsed with ParseSegment, passing the returned Init for its trex defaults.
func ParseInit(data []byte) (in Init, err error) {
	defer recoverDecode(&in, &err)
	if err := checkBoxes(data); err != nil {
		return Init{}, err
	}
	f, err := mp4.DecodeFileSR(bits.NewFixedSliceReader(data))
	if err != nil {
		return Init{}, fmt.Errorf("decode init segment: %w", err)
	}
	moov := f.Moov
	if moov == nil {
		return Init{}, errors.New("init segment has no moov box")
	}
	if len(moov.Traks) != 1 {
		return Init{}, fmt.Errorf("init segment has %d tracks, want 1 (CMAF)", len(moov.Traks))
	}
	if moov.Mvex == nil {
		return Init{}, errors.New("init segment has no mvex box: not a fragmented mp4")
	}
	trak := moov.Traks[0]
	if trak.Tkhd == nil || trak.Mdia == nil || trak.Mdia.Mdhd == nil || trak.Mdia.Hdlr == nil ||
		trak.Mdia.Minf == nil || trak.Mdia.Minf.Stbl == nil || trak.Mdia.Minf.Stbl.Stsd == nil {
		return Init{}, errors.New("init segment track lacks tkhd, mdhd, hdlr or stsd")
	}
	in.TrackID = trak.Tkhd.TrackID
	in.Timescale = trak.Mdia.Mdhd.Timescale
	if in.Timescale == 0 {
		return Init{}, errors.New("init segment mdhd timescale is zero")
	}
	if trex, ok := moov.Mvex.GetTrex(in.TrackID); ok {
		in.defaults = sampleDefaults{
			duration: trex.DefaultSampleDuration,
			size:     trex.DefaultSampleSize,
			flags:    trex.DefaultSampleFlags,
		}
	}

	stsd := trak.Mdia.Minf.Stbl.Stsd
	switch handler := trak.Mdia.Hdlr.HandlerType; handler {
	case "vide":
		in.Video = true
		entry, codecs, err := videoCodecs(stsd)
		if err != nil {
			return Init{}, err
		}
		in.Codecs = codecs
		in.Width, in.Height = int(entry.Width), int(entry.Height)
		if in.Width == 0 || in.Height == 0 {
			in.Width = int(trak.Tkhd.Width >> 16)
			in.Height = int(trak.Tkhd.Height >> 16)
		}
	case "soun":
		entry, codecs, asc, err := audioCodecs(stsd)
		if err != nil {
			return Init{}, err
		}
		in.Codecs = codecs
		in.Channels, in.SampleRate = int(entry.ChannelCount), int(entry.SampleRate)
		if asc != nil {
			if in.Channels == 0 {
				in.Channels = int(asc.ChannelConfiguration)
			}
			if in.SampleRate == 0 {
				in.SampleRate = asc.SamplingFrequency
			}
		}
	default:
		return Init{}, fmt.Errorf("track handler %q: %w", handler, ErrUnsupported)
	}
	return in, nil
}

// videoCodecs returns the visual sample entry of stsd and its codec string.
// AVC strings are lower-case hex (avc1.64001f), as ffmpeg writes them in HLS
// playlists; HEVC strings follow ISO/IEC 14496-15 Annex E as mp4ff builds them.
func videoCodecs(stsd *mp4.StsdBox) (*mp4.VisualSampleEntryBox, string, error) {
	switch {
	case stsd.AvcX != nil:
		e := stsd.AvcX
		if e.AvcC == nil {
			return nil, "", fmt.Errorf("%s sample entry has no avcC box", e.Type())
		}
		// The avcC record repeats profile_idc, the constraint flags and
		// level_idc of its SPS (ISO/IEC 14496-15 5.3.3.1.2); mp4ff formats them.
		sps := &avc.SPS{
			Profile:              uint32(e.AvcC.AVCProfileIndication),
			ProfileCompatibility: uint32(e.AvcC.ProfileCompatibility),
			Level:                uint32(e.AvcC.AVCLevelIndication),
		}
		return e, strings.ToLower(avc.CodecString(e.Type(), sps)), nil
	case stsd.HvcX != nil && (stsd.HvcX.Type() == "hvc1" || stsd.HvcX.Type() == "hev1"):
		// dvh1 and dvhe (Dolby Vision) share the struct but need their own string.
		e := stsd.HvcX
		if e.HvcC == nil {
			return nil, "", fmt.Errorf("%s sample entry has no hvcC box", e.Type())
		}
		rec := e.HvcC.DecConfRec
		sps := &hevc.SPS{ProfileTierLevel: hevc.ProfileTierLevel{
			GeneralProfileSpace:              rec.GeneralProfileSpace,
			GeneralTierFlag:                  rec.GeneralTierFlag,
			GeneralProfileIDC:                rec.GeneralProfileIDC,
			GeneralProfileCompatibilityFlags: rec.GeneralProfileCompatibilityFlags,
			GeneralConstraintIndicatorFlags:  rec.GeneralConstraintIndicatorFlags,
			GeneralLevelIDC:                  rec.GeneralLevelIDC,
		}}
		return e, hevc.CodecString(e.Type(), sps), nil
	case stsd.Av01 != nil:
		e := stsd.Av01
		if e.Av1C == nil {
			return nil, "", fmt.Errorf("%s sample entry has no av1C box", e.Type())
		}
		return e, e.Av1C.CodecConfRec.CodecString(e.Type()), nil
	}
	return nil, "", fmt.Errorf("video sample entry %s: %w", firstEntryType(stsd), ErrUnsupported)
}

// audioCodecs returns the audio sample entry of stsd, its codec string and,
// for MPEG-4 audio, the decoded AudioSpecificConfig (nil when absent).
func audioCodecs(stsd *mp4.StsdBox) (*mp4.AudioSampleEntryBox, string, *aac.AudioSpecificConfigHeader, error) {
	switch {
	case stsd.Mp4a != nil:
		e := stsd.Mp4a
		if e.Esds == nil || e.Esds.DecConfigDescriptor == nil {
			return nil, "", nil, errors.New("mp4a sample entry has no esds decoder config")
		}
		dcd := e.Esds.DecConfigDescriptor
		if dcd.ObjectType != 0x40 { // not MPEG-4 Audio: no audio object type follows
			return e, fmt.Sprintf("mp4a.%02x", dcd.ObjectType), nil, nil
		}
		if dcd.DecSpecificInfo == nil || len(dcd.DecSpecificInfo.DecConfig) == 0 {
			return nil, "", nil, errors.New("mp4a esds has no AudioSpecificConfig")
		}
		asc, err := aac.DecodeAudioSpecificConfigHeader(bytes.NewReader(dcd.DecSpecificInfo.DecConfig))
		if err != nil {
			return nil, "", nil, fmt.Errorf("decode AudioSpecificConfig: %w", err)
		}
		return e, fmt.Sprintf("mp4a.40.%d", asc.ObjectType), asc, nil
	case stsd.Opus != nil:
		return stsd.Opus, "opus", nil, nil
	case stsd.AC3 != nil:
		return stsd.AC3, "ac-3", nil, nil
	case stsd.EC3 != nil:
		return stsd.EC3, "ec-3", nil, nil
	}
	return nil, "", nil, fmt.Errorf("audio sample entry %s: %w", firstEntryType(stsd), ErrUnsupported)
}

func firstEntryType(stsd *mp4.StsdBox) string {
	if len(stsd.Children) == 0 {
		return "(none)"
	}
	return fmt.Sprintf("%q", stsd.Children[0].Type())
}

// recoverDecode, deferred, turns a panic inside mp4ff into an error and
// zeroes the result. mp4ff is third-party code reading untrusted bytes, and a
// bug there must not take the daemon down.
func recoverDecode[T any](v *T, err *error) {
	if r := recover(); r != nil {
		var zero T
		*v = zero
		*err = fmt.Errorf("decode mp4: malformed input: %v", r)
	}
}
