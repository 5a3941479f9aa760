package ladder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Limits and accepted values. The defaults are in defaultLadder and defaultAudio.
const (
	minSegment      = 500 * time.Millisecond
	maxSegment      = 10 * time.Second
	maxWindow       = 24 * time.Hour
	minWindowFactor = 3 // a non-zero window holds at least this many segments
	minHeight       = 64
	maxHeight       = 4320
	maxFPS          = 120
	maxVideoRungs   = 10
	maxAudioRungs   = 4
	maxAudioTracks  = 8      // source tracks an entry with tracks: all takes; the rest are dropped
	maxTrack        = 31     // highest source audio track an entry may pick
	minVideoBitrate = 10_000 // below this a missing "k" is far more likely than intent
	minAudioBitrate = 8_000
)

var (
	encoders     = []string{"auto", "x264", "nvenc", "qsv", "vce", "vaapi"}
	rungEncoders = encoders[1:] // a rung names a real encoder, never auto
	fallbacks    = []string{"x264", "none"}
	videoCodecs  = []string{"h264"}
	presets      = []string{"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"}
	tunes        = []string{"film", "animation", "grain", "stillimage", "fastdecode", "zerolatency", "psnr", "ssim"} // libx264's
	h264Profiles = []string{"baseline", "main", "high"}
	audioCodecs  = []string{"aac"}
	channelSets  = []int{1, 2}
	sampleRates  = []int{44100, 48000}
	trackSets    = []string{"all"}

	topKeys       = []string{"description", "segment_duration", "window", "encoder", "fallback", "video", "audio", "audio_only", "record", "record_retention"}
	videoKeys     = []string{"codec", "preset", "tune", "max_fps", "shed_top_rung", "renditions"}
	renditionKeys = []string{"name", "height", "bitrate", "maxrate", "bufsize", "profile", "encoder"}
	audioKeys     = []string{"name", "codec", "bitrate", "channels", "sample_rate", "track", "language", "tracks"}
)

// defaultLadder returns a ladder holding every top-level default; the file's
// keys are decoded over it.
func defaultLadder() Ladder {
	return Ladder{
		SegmentDuration: 2 * time.Second,
		Window:          0,
		Encoder:         "auto",
		Fallback:        "x264",
		Video:           Video{Codec: "h264", Preset: "veryfast"},
	}
}

// defaultAudio returns an audio rendition holding every audio default.
func defaultAudio() Audio {
	return Audio{Codec: "aac", Channels: 2, SampleRate: 48000}
}

var nameRE = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// ValidName reports whether s can name a ladder or a rendition: 1 to 64 of
// a-z, 0-9, '_' and '-'. Such a name is safe as a file or folder name.
func ValidName(s string) bool {
	return nameRE.MatchString(s)
}

// Problem is one thing wrong with a ladder file. Parse returns every Problem
// it finds joined with errors.Join.
type Problem struct {
	File    string // as given to Parse
	Line    int    // 1-based; 0 when no single line is to blame
	Path    string // key path such as "video.renditions[1].height"; empty for the whole file
	Message string
}

// Error formats the problem as "<file>:<line>: <key path>: <message>",
// leaving out the line and the key path when there are none.
func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Load reads and parses the ladder file at path. The ladder is named after
// the file: profiles/mobile.yaml is "mobile".
func Load(path string) (*Ladder, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read ladder: %w", err)
	}
	return Parse(strings.TrimSuffix(filepath.Base(path), ".yaml"), path, data)
}

// Parse decodes and validates one ladder. name is the ladder's name and
// filename is where data came from, used in messages and kept as Ladder.Path.
// On failure the error joins one *Problem per thing wrong, all of them.
func Parse(name, filename string, data []byte) (*Ladder, error) {
	d := &decoder{file: filename, lines: map[string]int{}, bad: map[string]bool{}, aliasAt: map[string]int{}}
	if !ValidName(name) {
		d.problems = append(d.problems, &Problem{File: filename,
			Message: fmt.Sprintf("ladder name %q is not valid: use 1 to 64 of a-z, 0-9, _ and -", name)})
	}
	l := defaultLadder()
	l.Name, l.Path = name, filename
	if body := d.document(data); body != nil {
		d.ladder(body, &l)
		d.validate(&l)
	}
	if len(d.problems) > 0 {
		slices.SortStableFunc(d.problems, func(a, b *Problem) int { return a.Line - b.Line })
		errs := make([]error, len(d.problems))
		for i, p := range d.problems {
			errs[i] = p
		}
		return nil, errors.Join(errs...)
	}
	return &l, nil
}

// problemLines splits an error from Parse into one line per problem.
func problemLines(err error) []string {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, problemLines(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

// decoder walks the YAML syntax tree by hand rather than unmarshalling into a
// struct, so that it can report every problem, not only the first, each with
// its line and key path.
type decoder struct {
	file     string
	problems []*Problem
	lines    map[string]int  // key path -> line of the key, or of the list entry
	bad      map[string]bool // key paths already reported, skipped by validate
	anchors  map[string]ast.Node
	aliasAt  map[string]int // key path -> line of the alias that supplied its value
}

func (d *decoder) addf(line int, path, format string, args ...any) {
	d.problems = append(d.problems, &Problem{File: d.file, Line: line, Path: path, Message: fmt.Sprintf(format, args...)})
}

// fail reports a problem with the value at path and marks it so that later
// checks do not report it again.
func (d *decoder) fail(path, format string, args ...any) {
	d.bad[path] = true
	d.addf(d.line(path), path, format, args...)
}

// line returns the line of the key at path, else of the nearest enclosing
// key found, else 1.
func (d *decoder) line(path string) int {
	for path != "" {
		if l, ok := d.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 1
}

// document parses data and returns the body of its single document, or nil
// after reporting why there is none.
func (d *decoder) document(data []byte) (body ast.Node) {
	f, err := parseYAML(data)
	if err != nil {
		var ye yaml.Error
		if errors.As(err, &ye) {
			d.addf(tokenLine(ye.GetToken()), "", "invalid YAML: %s", ye.GetMessage())
		} else {
			d.addf(0, "", "invalid YAML: %v", err)
		}
		return nil
	}
	var docs []*ast.DocumentNode
	for _, doc := range f.Docs {
		if doc != nil && doc.Body != nil {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		d.addf(1, "", "the file is empty: a ladder needs at least video.renditions or audio")
		return nil
	}
	if len(docs) > 1 {
		d.addf(nodeLine(docs[1].Body), "", "a ladder file holds one YAML document, this is a second one")
		return nil
	}
	d.anchors = map[string]ast.Node{}
	for _, n := range ast.Filter(ast.AnchorType, docs[0].Body) {
		if a, ok := n.(*ast.AnchorNode); ok && a.Name != nil && a.Name.GetToken() != nil {
			d.anchors[a.Name.GetToken().Value] = a.Value
		}
	}
	return docs[0].Body
}

// parseYAML parses data into a syntax tree. Duplicate keys are let through
// so that the decoder reports them with their key path alongside every other
// problem. A panic in the YAML library on hostile input becomes an error:
// a bad ladder file must never take the daemon down.
func parseYAML(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("yaml parser failed: %v", r)
		}
	}()
	return parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
}
