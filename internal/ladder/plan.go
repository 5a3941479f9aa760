package ladder

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

const (
	defaultFPS = 30
	maxSaneFPS = 120 // a probed rate above this is a container artefact, not a frame rate
)

// Plan applies the ladder to a probed source. Rungs taller than the source
// are dropped, never upscaled, and listed in Plan.Dropped; if that would drop
// every rung, the smallest is kept at the source height. Widths follow the
// source display aspect ratio, rounded to even. Audio is planned per source
// track (see planAudio). It fails when nothing at all would be encoded.
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
		l.planAudio(&p, src)
		p.AudioOnly = l.AudioOnly && len(p.Audio) > 0
	}

	if len(p.Video) == 0 && len(p.Audio) == 0 {
		return Plan{}, fmt.Errorf("plan ladder %q: nothing to encode (source video %t, audio %t; ladder has %d video and %d audio renditions)",
			l.Name, src.HasVideo, src.HasAudio, len(l.Video.Renditions), len(l.Audio))
	}
	return p, nil
}

// planAudio adds the ladder's audio renditions for the source's audio tracks to p.
//
// An entry of one track encodes the source track it names (0, the first, by default),
// labelled with its language key, else with the track's own language tag. The source
// may lack that track (a camera with one audio track, a file without its second
// language): the entry is then dropped, listed in Dropped with a note saying why, as a
// rung taller than the source is, and the job goes on with what the source has.
//
// An entry with tracks: all encodes each of the source's audio tracks, up to
// maxAudioTracks, as <name>_<index>, each labelled with its own language tag; the
// tracks beyond are dropped with a note. Its renditions form one HLS rendition group,
// named after the entry.
//
// Channels never exceed the track's own. Each rendition gets the Label players show
// (see labelAudio).
func (l *Ladder) planAudio(p *Plan, src SourceInfo) {
	tracks := src.AudioTracks
	if len(tracks) == 0 {
		// A probe stored by an older daemon: the fields of the first track.
		tracks = []AudioTrack{{Index: 0, Codec: src.AudioCodec, Channels: src.Channels, SampleRate: src.SampleRate}}
	}
	def := defaultAudio()
	add := func(a Audio, t AudioTrack) {
		if a.Codec == "" {
			a.Codec = def.Codec
		}
		if a.Channels == 0 {
			a.Channels = def.Channels
		}
		if a.SampleRate == 0 {
			a.SampleRate = def.SampleRate
		}
		if t.Channels > 0 && a.Channels > t.Channels {
			a.Channels = t.Channels
		}
		a.Track = t.Index
		if a.Language == "" {
			a.Language = t.Language
		}
		p.Audio = append(p.Audio, a)
	}
	titles := map[int]string{} // source track -> title
	for _, t := range tracks {
		titles[t.Index] = t.Title
	}
	for _, e := range l.Audio {
		if e.Tracks != "all" {
			if e.Track < 0 || e.Track >= len(tracks) {
				p.Dropped = append(p.Dropped, e.Name)
				p.Notes = append(p.Notes, fmt.Sprintf("audio %s: the source has no audio track %d (it has %s)", e.Name, e.Track, countTracks(len(tracks))))
				continue
			}
			add(e, tracks[e.Track])
			continue
		}
		for i, t := range tracks {
			a := e
			a.Name, a.Tracks, a.Group = e.Name+"_"+strconv.Itoa(i), "", e.Name
			if i >= maxAudioTracks {
				p.Dropped = append(p.Dropped, a.Name)
				p.Notes = append(p.Notes, fmt.Sprintf("audio %s: tracks: all takes the first %d audio tracks of the source, which has %d", a.Name, maxAudioTracks, len(tracks)))
				continue
			}
			add(a, t)
		}
	}
	labelAudio(p.Audio, titles)
}

func countTracks(n int) string {
	if n == 1 {
		return "1 audio track"
	}
	return strconv.Itoa(n) + " audio tracks"
}

// labelAudio sets each rendition's Label, the name players list it under (HLS NAME):
// within its group (see Audio.Group), the language's own name when no other rendition
// of the group has that language ("English", "Français"), else the source track's
// title, else, for a tracks: all group, "Track <n>" (n counts from 1), else nothing
// (players are shown the rendition's Name). Labels are unique within a group: one that
// would repeat another gets its rendition's name in brackets. The groups of tracks:
// all entries hold the same source tracks, so a track has the same label in each, as
// RFC 8216 asks of the groups' corresponding renditions.
func labelAudio(audio []Audio, titles map[int]string) {
	sameGroup := func(i, j int) bool { return audio[i].Group == audio[j].Group }
	for i := range audio {
		a := &audio[i]
		title := titles[a.Track]
		var dupLang, dupTrack, dupTitle bool
		for j := range audio {
			if j == i || !sameGroup(i, j) {
				continue
			}
			b := &audio[j]
			dupLang = dupLang || b.Language == a.Language
			dupTrack = dupTrack || b.Track == a.Track
			dupTitle = dupTitle || b.Track != a.Track && titles[b.Track] == title
		}
		switch {
		case a.Language != "" && !dupLang:
			a.Label = LanguageName(a.Language)
		case title != "" && !dupTrack && !dupTitle:
			a.Label = title
		case a.Group != "":
			a.Label = "Track " + strconv.Itoa(a.Track+1)
		}
	}
	for i := range audio {
		for j := range i {
			if sameGroup(i, j) && audio[i].Label != "" && audio[i].Label == audio[j].Label {
				audio[i].Label += " (" + audio[i].Name + ")"
				break
			}
		}
	}
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
