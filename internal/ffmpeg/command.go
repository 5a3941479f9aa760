package ffmpeg

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/transcoderd/transcoderd/internal/encoder"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/source"
)

// Where ffmpeg writes: the segments of manifest's layout (manifest.SegmentName) inside
// each rendition folder, its own playlists and init segments in PrivateDir.
const (
	// PrivateDir is the folder, inside the job folder, of ffmpeg's own media
	// playlists (see PrivatePlaylist). It is not served: they tell the job which
	// segments are complete (ffmpeg rewrites each atomically, a temporary file renamed
	// into place, after closing a segment); transcoderd renders the public playlists
	// itself. They live apart from the rendition folders so that the job watches one
	// folder in which only ffmpeg's renames happen: the job's own index.m3u8 renames in
	// a rendition folder would wake it for nothing.
	PrivateDir = ".ffmpeg"
	// PlaylistSize is how many segments a private playlist lists. ffmpeg deletes no
	// segment files; the job does.
	PlaylistSize = 10
)

// SegmentPattern returns the segment file name of run as hls_segment_filename takes
// it: manifest.SegmentName with %d for the number.
func SegmentPattern(run uint64) string { return manifest.SegmentTemplate(run, "%d") }

// PrivatePlaylist returns the path, relative to the job folder, of ffmpeg's own media
// playlist of rendition name: PrivateDir/<name>.m3u8.
func PrivatePlaylist(name string) string { return PrivatePlaylistOf(name, 0) }

// TaggedRuns is the first run number whose private files carry it (PrivatePlaylistOf,
// PrivateInitOf): a fleet job's runs are numbered from its assignment's epoch × 10^10
// (job's epochRuns), and in a fleet an ffmpeg of an earlier epoch, on a box cut off
// from the others, may still write into the shared job folder. Its segment names
// already differ from the new owner's; with the run in the private names too, it
// cannot overwrite the new owner's playlist or init segment either. A single box's runs
// (Unix seconds) stay below it, and its private names as they were.
const TaggedRuns = 10_000_000_000

// privateStem is the stem of rendition name's private files in run.
func privateStem(name string, run uint64) string {
	if run < TaggedRuns {
		return name
	}
	return name + "_" + strconv.FormatUint(run, 10)
}

// PrivatePlaylistOf returns the path, relative to the job folder, of ffmpeg's own media
// playlist of rendition name in run: PrivatePlaylist, or PrivateDir/<name>_<run>.m3u8
// for a run of a fleet epoch (TaggedRuns).
func PrivatePlaylistOf(name string, run uint64) string {
	return filepath.Join(PrivateDir, privateStem(name, run)+".m3u8")
}

// PrivateInit returns the path, relative to the job folder, where ffmpeg writes the init
// segment of rendition name: PrivateDir/<name>_init.mp4. ffmpeg writes it in place, so it
// is not served from there: once ffmpeg's playlist lists a segment, the init is whole, and
// the job moves it into the rendition folder under the run's manifest.InitName (a rename,
// so that no player ever reads a part of one).
func PrivateInit(name string) string { return PrivateInitOf(name, 0) }

// PrivateInitOf is PrivateInit for run: PrivateDir/<name>_<run>_init.mp4 for a run of a
// fleet epoch (TaggedRuns).
func PrivateInitOf(name string, run uint64) string {
	return filepath.Join(PrivateDir, privateStem(name, run)+"_init.mp4")
}

// ioTimeout is the socket timeout for network sources, in microseconds (10 s).
const ioTimeout = "10000000"

// StatsPeriod is how often ffmpeg reports its progress (-stats_period): each report
// wakes the daemon, which counts with ten jobs, but a live job's stall check sees a
// hung ffmpeg once it has missed two (job's stallLimits), within three segments of one
// second.
const StatsPeriod = time.Second

// ErrInvalidJob is wrapped by BuildArgs when the job cannot be turned into a
// command. Retrying will not help.
var ErrInvalidJob = errors.New("invalid ffmpeg job")

// Job is one ffmpeg run: a source and the plan to encode it to.
type Job struct {
	Source string      // URL or file path, as validated by the source package
	Kind   source.Kind // how to reach Source
	Live   bool        // a live source
	Plan   ladder.Plan
	Preset string // x264 preset name from the ladder; "" lets the encoder choose
	Dir    string // the job folder, absolute; renditions go in Dir/<name>/
	// StartNumbers is, per rendition name, the number of the first segment this run
	// writes: absent (0) for a new job, the next free number when ffmpeg is restarted.
	// Each rendition continues its own numbering: audio may be a segment ahead of video.
	StartNumbers map[string]uint64
	// Run is the run number, which the segment names hold (manifest.SegmentName). The
	// job numbers its runs from 1; 0 writes the names of the versions before run numbers.
	Run uint64
	// HW is the GPU the plan's hardware rungs use, from gpu's admission; the
	// zero value keeps every frame in system memory (the software path).
	HW encoder.Hardware
	// Transport is an RTSP source's transport for this run, TCP or UDP ("" is TCP);
	// RTSPTransport picks it. Empty for other kinds.
	Transport source.Transport
}

var renditionName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// audioEncoders maps a ladder audio codec to the ffmpeg encoder.
var audioEncoders = map[string]string{"aac": "aac"}

// BuildArgs returns the ffmpeg argv for j, without the program name. One ffmpeg
// decodes the source once, splits the video to one scaler per rung and writes
// one fMP4 HLS output per video and audio rendition into Dir/<name>/, each audio
// rendition from its own source track (ladder.Audio.Track):
// manifest.SegmentName(Run, N), with its playlist and init segment in Dir/PrivateDir (see
// PrivatePlaylist and PrivateInit). ffmpeg does not create those folders; the caller must (see
// OutputDirs). Progress goes to stdout (-progress
// pipe:1), warnings and errors to stderr.
func BuildArgs(j Job) ([]string, error) {
	if err := validate(j); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidJob, err)
	}
	p := j.Plan
	seg := seconds(p.SegmentDuration)

	var a Args
	a.Add("-hide_banner", "-nostdin")
	a.Flag("loglevel", "warning")
	a.Add("-nostats")
	a.Flag("progress", "pipe:1")
	a.Flag("stats_period", strconv.FormatFloat(StatsPeriod.Seconds(), 'f', -1, 64))
	a.Add(j.HW.InputArgs()...)
	opts, input := inputArgs(j.Kind, j.Source, j.Live, j.Transport)
	a.Add(opts...)
	a.Flag("i", input)

	if len(p.Video) > 0 {
		// The backends own the graph's chains and the encoders' options; see
		// encoder.Rungs.
		graph, outputs, err := encoder.Rungs(FrameRate(p.FPS), p.Video, j.HW, j.Preset, p.GOP, p.SegmentDuration.Seconds())
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidJob, err)
		}
		a.Flag("filter_complex", graph)
		for i, v := range p.Video {
			a.Add(outputs[i]...)
			a.Add("-an", "-sn", "-dn")
			hlsOutput(&a, j, v.Name, seg)
		}
	}
	for _, au := range p.Audio {
		// The rendition's own source track, by its index among the audio streams.
		a.Flag("map", "0:a:"+strconv.Itoa(au.Track))
		// Audio timestamps follow the sample count, bridging the source's jitter: RTMP
		// and FLV carry milliseconds, and an AAC frame stamped a few ticks early made the
		// mp4 muxer drop it ("Packet duration: -8 ... is out of range"), a click in the
		// audio every few seconds. Real gaps (over 100 ms) are still filled with silence,
		// so audio stays in sync with video.
		a.Flag("af", "aresample=async=1")
		a.Flag("c:a", audioEncoders[au.Codec])
		a.Flag("b:a", encoder.Bits(au.Bitrate))
		a.Flag("ac", strconv.Itoa(au.Channels))
		a.Flag("ar", strconv.Itoa(au.SampleRate))
		a.Add("-vn", "-sn", "-dn")
		hlsOutput(&a, j, au.Name, seg)
	}
	return a.Strings(), nil
}

// OutputDirs returns the folders BuildArgs writes to: the rendition folders, video
// rungs first, in plan order, then PrivateDir. They must exist before ffmpeg starts;
// the job creates them from this list before each run. Only Dir and Plan are read.
func OutputDirs(j Job) []string {
	return append(renditionDirs(j), filepath.Join(j.Dir, PrivateDir))
}

// renditionDirs returns the rendition folders, video rungs first, in plan order.
func renditionDirs(j Job) []string {
	var dirs []string
	for _, v := range j.Plan.Video {
		dirs = append(dirs, filepath.Join(j.Dir, v.Name))
	}
	for _, au := range j.Plan.Audio {
		dirs = append(dirs, filepath.Join(j.Dir, au.Name))
	}
	return dirs
}

// inputArgs returns the input options for a source kind and the string to pass
// to -i. ffprobe takes the same options. tr is an RTSP source's transport, TCP or
// UDP ("" is TCP).
func inputArgs(kind source.Kind, src string, live bool, tr source.Transport) (opts []string, input string) {
	switch kind {
	case source.RTMP:
		opts = []string{"-rw_timeout", ioTimeout}
	case source.RTSP:
		// One transport, never ffmpeg's negotiation: see RTSPTransport. Over UDP,
		// ffmpeg takes a pair of local ports per stream from min_port to max_port
		// (5000 to 65000, its defaults, kept: a firewall in front of this host must
		// let the source's UDP in to them), and -timeout also bounds how long it
		// waits for a packet.
		if tr == "" {
			tr = source.TransportTCP
		}
		opts = []string{"-rtsp_transport", string(tr), "-timeout", ioTimeout}
	case source.HTTP:
		opts = []string{"-rw_timeout", ioTimeout, "-reconnect", "1", "-reconnect_streamed", "1", "-reconnect_delay_max", "5"}
		if live {
			// Start three segments from the live edge, as players do.
			opts = append(opts, "-live_start_index", "-3")
		}
	case source.Push:
		// The hub starts each run at a keyframe with its GOP cache: 1 s of probing
		// suffices, where ffmpeg's default 5 s doubles the wait for the first segment.
		opts = []string{"-analyzeduration", "1000000", "-probesize", "1000000", "-f", "mpegts"}
	case source.File:
		// "file:" keeps a name like "a:b.mp4" from being read as a protocol and
		// "-" from meaning stdin.
		if !strings.HasPrefix(src, "file:") {
			src = "file:" + src
		}
	}
	// The whitelists come first: they confine everything the input opens.
	return append(whitelistArgs(kind), opts...), src
}

// hlsOutput appends the HLS muxer options and the output playlist of rendition
// name. Every segment starts with a keyframe (the encoder forces one on each
// boundary and hls cuts only there) and carries a tfdt, which ffmpeg's fMP4 HLS
// segments always do.
func hlsOutput(a *Args, j Job, name, seg string) {
	out := filepath.Join(j.Dir, name)
	a.Flag("f", "hls")
	a.Flag("hls_time", seg)
	a.Flag("hls_segment_type", "fmp4")
	// Relative to the playlist's folder, PrivateDir: ffmpeg writes the init segment
	// there (see PrivateInit).
	a.Flag("hls_fmp4_init_filename", filepath.Base(PrivateInitOf(name, j.Run)))
	a.Flag("hls_segment_filename", filepath.Join(out, SegmentPattern(j.Run)))
	a.Flag("hls_list_size", strconv.Itoa(PlaylistSize))
	// temp_file: each segment is written under a temporary name and renamed when
	// closed, so that no request (a player ahead of the manifests, a cache) can get a
	// part of one under its final name, which is served as immutable. (ffmpeg renames
	// its live playlist into place with or without the flag.) The renames happen in
	// the rendition folders, which the job does not watch.
	a.Flag("hls_flags", "+independent_segments+temp_file")
	syncOutput(a)
	a.Flag("start_number", strconv.FormatUint(j.StartNumbers[name], 10))
	a.Add(filepath.Join(j.Dir, PrivatePlaylistOf(name, j.Run)))
}

// TimeOffset is where ffmpeg's output timeline begins: the media time (tfdt) of the
// first sample of the stream that starts first in the source, in every output of a run.
// See syncOutput.
const TimeOffset = 200 * time.Millisecond

// syncOutput appends the options that make each output's media times (tfdt, and the
// composition offsets in trun) carry where its samples are presented, so that audio and
// video line up in MSE players, which place samples by those times alone.
//
// Left to its defaults, ffmpeg starts every output's tfdt at 0 and writes where the
// track really begins only in the init segment's edit list: a source whose audio starts
// 0.5 s after its video came out with both tracks at 0 and the audio half a second
// early in hls.js, dash.js and Shaka, which ignore edit lists of more than one entry.
// Instead:
//   - movflags frag_discont: tfdt is each fragment's decode time as ffmpeg has it, not
//     counted from the track's first sample;
//   - negative_cts_offsets: a video frame's presentation time is its decode time plus
//     a signed offset, so the first frame presents at its time, not two frames late
//     (B-frames);
//   - use_editlist=0: no edit list, so every player, MSE or not, reads the same times;
//   - avoid_negative_ts disabled: each output is a muxer of its own, and the default
//     would shift one whose first time is negative on its own, away from the others;
//   - output_ts_offset: every output's times are shifted by the same TimeOffset, so that
//     no time is negative: an AAC encoder's first frame (its priming samples) starts
//     1024 samples before the audio does (21 ms at 48 kHz, 128 ms at 8 kHz).
func syncOutput(a *Args) {
	a.Flag("hls_segment_options", "movflags=+frag_discont+negative_cts_offsets:use_editlist=0")
	a.Flag("avoid_negative_ts", "disabled")
	a.Flag("output_ts_offset", seconds(TimeOffset))
}

func validate(j Job) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	switch j.Kind {
	case source.RTMP, source.RTSP, source.SRT, source.HTTP, source.File:
	case source.Push:
		if j.Source != source.PushInput {
			bad("a push source is read from %s, not %q", source.PushInput, j.Source)
		}
	default:
		bad("unknown source kind %q", j.Kind)
	}
	switch {
	case j.Kind == source.RTSP && j.Transport != "" && j.Transport != source.TransportTCP && j.Transport != source.TransportUDP:
		bad("rtsp transport %q: a run is over tcp or udp", j.Transport)
	case j.Kind != source.RTSP && j.Transport != "":
		bad("transport %q is for rtsp sources only", j.Transport)
	}
	if j.Source == "" {
		bad("source is empty")
	} else if hasControl(j.Source) {
		bad("source contains a control character")
	}
	switch {
	case !filepath.IsAbs(j.Dir):
		bad("job folder %q is not an absolute path", j.Dir)
	case strings.Contains(j.Dir, "%"):
		// ffmpeg would read it as part of the segment name pattern.
		bad("job folder %q contains %%", j.Dir)
	case hasControl(j.Dir):
		bad("job folder contains a control character")
	}
	for name, n := range j.StartNumbers {
		if n > math.MaxInt64 {
			bad("start number %d of %q is too large", n, name)
		}
	}

	p := j.Plan
	if err := j.HW.Validate(); err != nil {
		errs = append(errs, err)
	} else if j.HW.Type != "" && len(p.Video) == 0 {
		bad("hardware %s is set but the plan has no video", j.HW.Type)
	}
	if p.SegmentDuration <= 0 {
		bad("segment duration must be greater than zero")
	}
	if len(p.Video) == 0 && len(p.Audio) == 0 {
		bad("plan has neither video nor audio renditions")
	}
	if len(p.Video) > 0 {
		if !(p.FPS > 0) || math.IsInf(p.FPS, 0) {
			bad("frame rate %v must be greater than zero", p.FPS)
		}
		if p.GOP <= 0 {
			bad("gop %d must be greater than zero", p.GOP)
		}
	}
	seen := map[string]bool{}
	name := func(n string) {
		if !renditionName.MatchString(n) {
			bad("rendition name %q must match [a-z0-9_-]{1,64}", n)
		} else if seen[n] {
			bad("rendition name %q is used twice", n)
		}
		seen[n] = true
	}
	for _, v := range p.Video {
		name(v.Name)
		if v.Width <= 0 || v.Height <= 0 || v.Width%2 != 0 || v.Height%2 != 0 {
			bad("rung %q: size %dx%d must be positive and even", v.Name, v.Width, v.Height)
		}
	}
	for _, au := range p.Audio {
		name(au.Name)
		if _, ok := audioEncoders[au.Codec]; !ok {
			bad("audio %q: unsupported codec %q: want aac", au.Name, au.Codec)
		}
		if au.Bitrate <= 0 {
			bad("audio %q: bitrate must be greater than zero", au.Name)
		}
		if au.Channels < 1 || au.Channels > 8 {
			bad("audio %q: channels %d must be 1 to 8", au.Name, au.Channels)
		}
		if au.SampleRate <= 0 {
			bad("audio %q: sample rate %d must be greater than zero", au.Name, au.SampleRate)
		}
		if au.Track < 0 {
			bad("audio %q: source track %d must not be negative", au.Name, au.Track)
		}
	}
	return errors.Join(errs...)
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// FrameRate writes a frame rate as an integer or an exact fraction, the form both
// ffmpeg's fps filter and DASH's frameRate attribute take. The NTSC rates are
// 30000/1001 and the like: ffmpeg reads a decimal such as 29.97 as 2997/100, which
// drifts from the source by a frame every half minute. Others: 30, 25/2.
func FrameRate(f float64) string {
	for _, base := range []int{24, 30, 48, 60, 120} {
		if math.Abs(f-float64(base)*1000/1001) < 0.005 {
			return strconv.Itoa(base*1000) + "/1001"
		}
	}
	num, den := int64(math.Round(f*1000)), int64(1000)
	for a, b := num, den; ; {
		if b == 0 {
			num, den = num/a, den/a
			break
		}
		a, b = b, a%b
	}
	if den == 1 {
		return strconv.FormatInt(num, 10)
	}
	return strconv.FormatInt(num, 10) + "/" + strconv.FormatInt(den, 10)
}

// seconds writes a duration in seconds, minimally: 2, 1.5.
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}
