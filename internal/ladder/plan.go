package ladder

import (
	"errors"
	"fmt"
	"math"
)

const (
	defaultFPS = 30
	maxSaneFPS = 120 // a probed rate above this is a container artefact, not a frame rate
)

// Plan applies the ladder to a probed source. Rungs taller than the source
// are dropped, never upscaled, and listed in Plan.Dropped; if that would drop
// every rung, the smallest is kept at the source height. Widths follow the
// source display aspect ratio, rounded to even. It fails when nothing at all
// would be encoded.
func (l *Ladder) Plan(src SourceInfo) (Plan, error) {
	if l == nil {
		return Plan{}, errors.New("plan: no ladder")
	}
	p := Plan{
		FPS:             planFPS(src.FPS, l.Video.MaxFPS),
		SegmentDuration: l.SegmentDuration,
		Video:           []PlannedVideo{}, // empty, not nil: JSON shows [] rather than null
		Audio:           []Audio{},
	}
	p.GOP = max(1, int(math.Round(p.FPS*l.SegmentDuration.Seconds())))

	if src.HasVideo && len(l.Video.Renditions) > 0 {
		if src.Width <= 0 || src.Height < 2 {
			return Plan{}, fmt.Errorf("plan ladder %q: source video size %dx%d is unusable", l.Name, src.Width, src.Height)
		}
		for _, r := range l.Video.Renditions {
			if r.Height > src.Height {
				p.Dropped = append(p.Dropped, r.Name)
				continue
			}
			p.Video = append(p.Video, l.planRung(r, src, r.Height))
		}
		if len(p.Video) == 0 {
			// Every rung is taller than the source: keep the smallest one at
			// the source's own height, so a small source still plays.
			last := l.Video.Renditions[len(l.Video.Renditions)-1]
			p.Dropped = p.Dropped[:len(p.Dropped)-1]
			p.Video = append(p.Video, l.planRung(last, src, src.Height/2*2))
		}
	}

	if src.HasAudio {
		for _, a := range l.Audio {
			def := defaultAudio()
			if a.Codec == "" {
				a.Codec = def.Codec
			}
			if a.Channels == 0 {
				a.Channels = def.Channels
			}
			if a.SampleRate == 0 {
				a.SampleRate = def.SampleRate
			}
			if src.Channels > 0 && a.Channels > src.Channels {
				a.Channels = src.Channels
			}
			p.Audio = append(p.Audio, a)
		}
		p.AudioOnly = l.AudioOnly && len(p.Audio) > 0
	}

	if len(p.Video) == 0 && len(p.Audio) == 0 {
		return Plan{}, fmt.Errorf("plan ladder %q: nothing to encode (source video %t, audio %t; ladder has %d video and %d audio renditions)",
			l.Name, src.HasVideo, src.HasAudio, len(l.Video.Renditions), len(l.Audio))
	}
	return p, nil
}

// planRung sizes rung r at height h for the source.
func (l *Ladder) planRung(r Rendition, src SourceInfo, h int) PlannedVideo {
	w := int(math.Round(float64(src.Width)*float64(h)/float64(src.Height)/2)) * 2
	maxRate := r.MaxRate
	if maxRate == 0 {
		maxRate = r.Bitrate
	}
	bufSize := r.BufSize
	if bufSize == 0 {
		bufSize = 2 * maxRate
	}
	enc := r.Encoder
	if enc == "" {
		enc = l.Encoder
	}
	return PlannedVideo{
		Name:    r.Name,
		Width:   max(2, w),
		Height:  h,
		Bitrate: r.Bitrate,
		MaxRate: maxRate,
		BufSize: bufSize,
		Profile: r.Profile,
		Encoder: resolveEncoder(enc),
		Tune:    l.Video.Tune,
	}
}

// resolveEncoder turns the encoder a ladder asks for into the one that runs.
// For now "auto" (and an empty value) always means x264; hardware detection
// will choose nvenc, qsv, vce or vaapi here when a GPU is present.
func resolveEncoder(enc string) string {
	if enc == "" || enc == "auto" {
		return "x264"
	}
	return enc
}

// planFPS returns the output frame rate: the source rate, 30 when unknown or
// absurd, capped at maxFPS when set, rounded to 3 decimals.
func planFPS(src, maxFPS float64) float64 {
	f := src
	if !(f > 0 && f <= maxSaneFPS) { // also catches NaN
		f = defaultFPS
	}
	if maxFPS > 0 && f > maxFPS {
		f = maxFPS
	}
	return math.Round(f*1000) / 1000
}
