package manifest

import "time"

// Kind tells a video track from an audio one.
type Kind string

// Track kinds.
const (
	Video Kind = "video"
	Audio Kind = "audio"
)

// Segment is one CMAF media segment as it is on disk, measured from the media itself.
type Segment struct {
	Number        uint64    // the N of its file name (SegmentName); also the HLS media sequence number and DASH $Number$
	Start         uint64    // baseMediaDecodeTime (tfdt) in the track's timescale
	Duration      uint64    // sum of the sample durations, in the track's timescale
	Size          int64     // bytes
	Discontinuity bool      // the first segment after an ffmpeg restart
	ProgramDate   time.Time // wall-clock time of the segment's first sample

	// PeriodStart is where the ffmpeg run that wrote this segment begins on the
	// presentation timeline: 0 for the first run. Each later run (after a restart) is
	// its own DASH Period, since its media time (tfdt) starts again from zero.
	PeriodStart time.Duration
	// MediaTime is the segment's tfdt as written in the file, in the track's timescale.
	// It equals Start in the first run; in later runs Start = the run's offset + MediaTime.
	// Only read for segments with PeriodStart > 0.
	MediaTime uint64
	// Disc is the segment's HLS discontinuity sequence number: how many ffmpeg restarts
	// came before its run. It is the same for the same run in every track.
	Disc uint64 `json:",omitempty"`
	// Run is the run number of the ffmpeg run that wrote the segment: its file name and
	// its init segment's hold it (see layout.go). 0 for the segments of versions before
	// run numbers.
	Run uint64 `json:",omitempty"`
}

// Seconds returns the segment duration in seconds for a timescale.
func (s Segment) Seconds(timescale uint32) float64 {
	return float64(s.Duration) / float64(timescale)
}

// Track is one rendition: its own folder with its init segments and media segments (see layout.go).
type Track struct {
	Name       string // folder name relative to the job folder; also the DASH Representation id
	Kind       Kind
	Codecs     string // RFC 6381, read from the init segment, e.g. avc1.64001f or mp4a.40.2
	Timescale  uint32 // from the init segment (mdhd)
	Width      int    // video only
	Height     int    // video only
	FrameRate  string // video only, as a DASH frameRate: "30" or "30000/1001"
	Channels   int    // audio only
	SampleRate int    // audio only
	Language   string // audio only, optional (BCP 47); "und" when empty

	// Label is what players list an audio track under (HLS NAME): "English",
	// "Commentary". Empty means Name. Unique within the track's Group.
	Label string
	// Group is the HLS rendition group (GROUP-ID) of an audio track: one per encoding
	// (bitrate, codec), each holding the same source tracks. Empty means "audio". With
	// several groups every video variant is offered once with each (see RenderMaster).
	Group string
	// SourceTrack is the source audio track an audio track was encoded from. DASH puts
	// the tracks of one language and one source track, which only differ in bitrate,
	// in one AdaptationSet; two source tracks of one language (a film and its
	// commentary) are not interchangeable and get one each.
	SourceTrack int

	// Declared is the bandwidth the ladder asked for (bits/s), used while too few segments exist to measure.
	Declared int64
	// Segments are the segments to list, oldest first, already trimmed to the window.
	Segments []Segment
	// PeakBandwidth and AverageBandwidth are measured (bits/s) over every segment produced so far,
	// including ones that have left the window; 0 when nothing was measured yet.
	PeakBandwidth    int64
	AverageBandwidth int64
	// DiscontinuitySequence is the HLS EXT-X-DISCONTINUITY-SEQUENCE of the track's
	// playlist: the discontinuities before its first listed segment. Every track counts
	// the same ffmpeg runs, so the same content has the same number in every variant
	// (RFC 8216 §6.2.2) even when their windows start a segment apart.
	DiscontinuitySequence uint64
	// Withdrawn marks a video rung that is no longer encoded (shed while the box was
	// over capacity): the master playlist leaves it out, and the caller removes its
	// media playlist so that HLS players on it switch to another. The MPD keeps it in
	// the Periods where it has segments, so DASH players can still seek back into it.
	Withdrawn bool
}

// Presentation is everything the two manifests are rendered from.
type Presentation struct {
	Live  bool // a live source: dynamic MPD, sliding or event HLS playlists
	Ended bool // live presentation stopped (ENDLIST, no more MPD updates) or VOD finished

	// AvailabilityStart is the wall-clock time of media time 0 (live only).
	AvailabilityStart time.Time
	// PublishTime is when this rendering was made (live only).
	PublishTime time.Time

	SegmentDuration time.Duration // target segment length from the ladder
	Window          time.Duration // live time-shift depth; 0 keeps everything

	// Root and Start make the presentation an on-demand cut of a job's segments (a
	// clip, or the whole recording), rendered in a folder of its own inside the job
	// folder: Root is the path from that folder to the job folder ("../../" for
	// clips/<id>/), put before every init and segment URI, which stay those of the
	// job's own files (nothing is copied). Start is where the cut begins on the job's
	// presentation timeline: the cut's own timeline starts there at 0 (DASH Periods and
	// presentationTimeOffset are shifted by it). A cut is rendered like a finished VOD
	// (Live false, Ended true), and lists every Period it has (no holdBack wait).
	Root  string
	Start time.Duration

	Video     []Track // highest rung first
	Audio     []Track // usually one; one per language and bitrate with several source tracks
	AudioOnly bool    // add an audio-only variant to the HLS master
}
