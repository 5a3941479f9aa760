package ladder

import "time"

// Ladder is one validated bitrate ladder, read from profiles/<Name>.yaml.
type Ladder struct {
	Name            string        `json:"name"` // the file name without .yaml
	Path            string        `json:"-"`    // where it was read from ("embedded:default.yaml" for built-ins)
	Description     string        `json:"description,omitempty"`
	SegmentDuration time.Duration `json:"segment_duration"` // GOP and segment length
	Window          time.Duration `json:"window"`           // live time-shift depth; 0 keeps every segment
	Encoder         string        `json:"encoder"`          // auto | x264 | nvenc | qsv | vce | vaapi
	Fallback        string        `json:"fallback"`         // x264 | none
	Video           Video         `json:"video"`
	Audio           []Audio       `json:"audio,omitempty"`
	AudioOnly       bool          `json:"audio_only"` // also offer an audio-only HLS variant
	// Record keeps every segment of a live job on disk, and in its stored index, after
	// it leaves the window: the live manifests slide as always, and the recording is
	// cut into on-demand clips and served whole once the job has ended. A job's own
	// "record" overrides it.
	Record bool `json:"record,omitempty"`
	// RecordRetention is how long the recording of an ended job is kept before its
	// segments are deleted (those a clip names stay); 0 keeps it until the job is purged.
	RecordRetention time.Duration `json:"record_retention,omitempty"`
}

// Video holds the video part of a ladder.
type Video struct {
	Codec  string `json:"codec"`  // h264
	Preset string `json:"preset"` // x264 preset name, mapped for hardware encoders
	// Tune is an x264 tune ("" for none). Hardware encoders map zerolatency to
	// their own low-latency options and ignore the others, which the job's
	// encoder notes say.
	Tune   string  `json:"tune,omitempty"`
	MaxFPS float64 `json:"max_fps,omitempty"`
	// ShedTopRung lets a live job that runs slower than real time stop encoding its
	// top rung, so that the others keep up, rather than stutter in every rung. The
	// rung comes back when the box has room for it again.
	ShedTopRung bool        `json:"shed_top_rung,omitempty"`
	Renditions  []Rendition `json:"renditions"`
}

// Rendition is one video rung as written in the ladder.
type Rendition struct {
	Name    string `json:"name"`              // folder and Representation id: [a-z0-9_-]{1,64}
	Height  int    `json:"height"`            // width follows the source aspect ratio
	Bitrate int64  `json:"bitrate"`           // bits per second
	MaxRate int64  `json:"maxrate,omitempty"` // bits per second; 0 means Bitrate
	BufSize int64  `json:"bufsize,omitempty"` // bits; 0 means 2 x MaxRate
	Profile string `json:"profile,omitempty"` // baseline | main | high; empty lets the encoder choose
	Encoder string `json:"encoder,omitempty"` // per-rung override of Ladder.Encoder; empty inherits
}

// Audio is one audio rendition: as written in the ladder, or as planned (Plan.Audio).
type Audio struct {
	Name       string `json:"name"`
	Codec      string `json:"codec"`       // aac
	Bitrate    int64  `json:"bitrate"`     // bits per second
	Channels   int    `json:"channels"`    // 1 or 2
	SampleRate int    `json:"sample_rate"` // Hz, default 48000
	// Track is the source audio track encoded: its index among the source's audio
	// streams (ffmpeg's -map 0:a:N), 0 for the first.
	Track int `json:"track,omitempty"`
	// Language labels the track for players (HLS LANGUAGE, DASH lang), a BCP 47 tag
	// such as "en". Empty in the ladder takes the source track's own language tag.
	Language string `json:"language,omitempty"`
	// Tracks is "all" for an entry that encodes every audio track of the source, each
	// with its own language tag, as renditions <Name>_0, <Name>_1, ... (see Plan); then
	// Track and Language are not set. Empty for an entry of one track. Never set in a plan.
	Tracks string `json:"tracks,omitempty"`

	// Set by Plan only, never read from a ladder file:

	// Label is the name players show for the rendition (HLS NAME): the language's own
	// name ("Français"), else the source track's title, else empty, which means Name.
	Label string `json:"label,omitempty"`
	// Group is the name of the entry with tracks: all that the rendition came from:
	// the renditions of one such entry are one HLS rendition group (one bitrate, every
	// language). Empty for the renditions of entries of one track, which make one group.
	Group string `json:"group,omitempty"`
}

// AudioTrack is one audio stream of the source, as the probe found it.
type AudioTrack struct {
	Index      int    `json:"index"`              // among the source's audio streams: ffmpeg's 0:a:<Index>
	Codec      string `json:"codec,omitempty"`    // ffprobe's codec_name, e.g. aac
	Language   string `json:"language,omitempty"` // BCP 47 (see Language), from the stream's language tag; empty when untagged or "und"
	Channels   int    `json:"channels,omitempty"`
	SampleRate int    `json:"sample_rate,omitempty"`
	Title      string `json:"title,omitempty"` // the stream's title tag, e.g. "Director's commentary"
}

// SourceInfo is what a probe of the source found; Plan uses it to size the rungs.
type SourceInfo struct {
	HasVideo   bool    `json:"has_video"`
	Width      int     `json:"width,omitempty"`  // display width (sample aspect ratio applied)
	Height     int     `json:"height,omitempty"` // display height
	FPS        float64 `json:"fps,omitempty"`    // 0 when unknown
	VideoCodec string  `json:"video_codec,omitempty"`
	HasAudio   bool    `json:"has_audio"`
	AudioCodec string  `json:"audio_codec,omitempty"` // of the first audio track
	Channels   int     `json:"channels,omitempty"`    // of the first audio track
	SampleRate int     `json:"sample_rate,omitempty"` // of the first audio track
	// AudioTracks lists every audio stream, in order. A SourceInfo without it but with
	// HasAudio (stored by an older daemon) stands for one track, described by the three
	// fields above.
	AudioTracks []AudioTrack  `json:"audio_tracks,omitempty"`
	Duration    time.Duration `json:"duration,omitempty"` // 0 for live or unknown
}

// Plan is a ladder applied to one source: the rungs that will really be encoded.
type Plan struct {
	FPS             float64        `json:"fps"` // output frame rate (source rate capped at MaxFPS, 30 if unknown)
	GOP             int            `json:"gop"` // frames per GOP = round(FPS * SegmentDuration)
	SegmentDuration time.Duration  `json:"segment_duration"`
	Video           []PlannedVideo `json:"video"`
	Audio           []Audio        `json:"audio"`
	AudioOnly       bool           `json:"audio_only"`
	// Dropped names the renditions of the ladder that are not encoded: video rungs
	// taller than the source, audio renditions of a track the source lacks.
	Dropped []string `json:"dropped,omitempty"`
	// Notes says why each audio rendition in Dropped was dropped, one sentence each.
	Notes []string `json:"notes,omitempty"`
}

// PlannedVideo is one video rung sized for the source.
type PlannedVideo struct {
	Name    string `json:"name"`
	Width   int    `json:"width"`  // even
	Height  int    `json:"height"` // even
	Bitrate int64  `json:"bitrate"`
	MaxRate int64  `json:"maxrate"` // resolved: never 0
	BufSize int64  `json:"bufsize"` // resolved: never 0
	Profile string `json:"profile,omitempty"`
	Encoder string `json:"encoder"`        // resolved encoder name, e.g. "x264"
	Tune    string `json:"tune,omitempty"` // the ladder's video.tune
}
