package ladder

import (
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

func tokenLine(tk *token.Token) int {
	if tk == nil || tk.Position == nil {
		return 0
	}
	return tk.Position.Line
}

func nodeLine(n ast.Node) int {
	if n == nil {
		return 0
	}
	return tokenLine(n.GetToken())
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// quoteKey quotes a key for a key path unless it is a plain word, so that an
// unknown key holding spaces, dots or newlines still reads as one key.
func quoteKey(key string) string {
	if plainKey.MatchString(key) {
		return key
	}
	return strconv.Quote(key)
}

func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// kind names a node's type for messages: "got a list".
func kind(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	case *ast.NullNode, nil:
		return "nothing"
	}
	return n.Type().String()
}

// resolve follows anchors and aliases to the node that holds the value. It
// reports tags and unknown aliases at path and returns nil for them.
func (d *decoder) resolve(n ast.Node, path string) ast.Node {
	for range 32 {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.AliasNode:
			name := ""
			if v.Value != nil && v.Value.GetToken() != nil {
				name = v.Value.GetToken().Value
			}
			target, ok := d.anchors[name]
			if !ok {
				d.fail(path, "alias *%s names no anchor", name)
				return nil
			}
			if _, seen := d.aliasAt[path]; !seen {
				d.aliasAt[path] = nodeLine(v)
			}
			n = target
		case *ast.TagNode:
			tag := ""
			if v.Start != nil {
				tag = v.Start.Value
			}
			d.fail(path, "YAML tags such as %s are not supported", tag)
			return nil
		default:
			return n
		}
	}
	d.fail(path, "aliases nest too deeply")
	return nil
}

// aliasLine returns the line where an alias brought in the value at path or
// one enclosing it, else 0. Problems inside an aliased value are reported
// where it is used, not where its anchor is.
func (d *decoder) aliasLine(path string) int {
	for {
		if l, ok := d.aliasAt[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
}

// fields checks that n is a mapping whose keys are all in known, each once,
// and returns its values by key. It records the line of every key. ok is
// false when n is not a mapping at all.
func (d *decoder) fields(n ast.Node, path string, known []string) (map[string]ast.Node, bool) {
	var values []*ast.MappingValueNode
	switch v := n.(type) {
	case *ast.MappingNode:
		values = v.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{v}
	default:
		d.bad[path] = true
		if path == "" {
			d.addf(max(nodeLine(n), 1), "", "the document must be a mapping of keys (%s), got %s", strings.Join(known, ", "), kind(n))
			return nil, false
		}
		d.addf(d.line(path), path, "want a mapping of keys (%s), got %s", strings.Join(known, ", "), kind(n))
		return nil, false
	}
	out := map[string]ast.Node{}
	for _, mv := range values {
		if mv == nil || mv.Key == nil {
			continue
		}
		line := nodeLine(mv.Key)
		if al := d.aliasLine(path); al > 0 {
			line = al
		}
		if mv.Key.IsMergeKey() {
			d.addf(line, join(path, "<<"), "merge keys are not supported: write the keys out")
			continue
		}
		key := tokenValue(mv.Key)
		p := join(path, quoteKey(key))
		if _, ok := mv.Key.(ast.ScalarNode); !ok {
			d.addf(line, path, "a key must be a plain word, got %s", kind(mv.Key))
			continue
		}
		if !slices.Contains(known, key) {
			d.addf(line, p, "unknown key; known keys here are %s", strings.Join(known, ", "))
			continue
		}
		if _, dup := out[key]; dup {
			d.addf(line, p, "duplicate key, first set on line %d", d.lines[p])
			continue
		}
		d.lines[p] = line
		out[key] = mv.Value
	}
	return out, true
}

// value returns the resolved value of key in m, or nil when the key is
// absent or its value was already reported. Null values are reported here.
func (d *decoder) value(m map[string]ast.Node, path, key string) (ast.Node, string) {
	p := join(path, key)
	raw, ok := m[key]
	if !ok {
		return nil, p
	}
	n := d.resolve(raw, p)
	if n == nil {
		return nil, p
	}
	if _, null := n.(*ast.NullNode); null {
		d.fail(p, "has no value: give one or remove the key")
		return nil, p
	}
	return n, p
}

// scalarText returns the text of a string, integer or float scalar.
func scalarText(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.IntegerNode, *ast.FloatNode:
		return tokenValue(v), true
	}
	return "", false
}

// tokenValue returns the text of n's token as written, without quotes.
func tokenValue(n ast.Node) string {
	if tk := n.GetToken(); tk != nil {
		return tk.Value
	}
	return ""
}

// str decodes a string. Numbers are taken as written, so that a name such as
// 360 is the string "360".
func (d *decoder) str(m map[string]ast.Node, path, key string, dst *string) bool {
	n, p := d.value(m, path, key)
	if n == nil {
		return false
	}
	if lit, ok := n.(*ast.LiteralNode); ok && lit.Value != nil {
		*dst = strings.TrimRight(lit.Value.Value, "\n")
		return true
	}
	s, ok := scalarText(n)
	if !ok {
		d.fail(p, "want a string, got %s", kind(n))
		return false
	}
	*dst = s
	return true
}

// enum decodes a string that must be one of allowed.
func (d *decoder) enum(m map[string]ast.Node, path, key string, allowed []string, dst *string) bool {
	var s string
	if !d.str(m, path, key, &s) {
		return false
	}
	if !slices.Contains(allowed, s) {
		d.fail(join(path, key), "%q is not one of %s", s, strings.Join(allowed, ", "))
		return false
	}
	*dst = s
	return true
}

// integer decodes a whole decimal number.
func (d *decoder) integer(m map[string]ast.Node, path, key string, dst *int) bool {
	n, p := d.value(m, path, key)
	if n == nil {
		return false
	}
	in, ok := n.(*ast.IntegerNode)
	if !ok {
		d.fail(p, "want a whole number, got %s", kind(n))
		return false
	}
	text := tokenValue(in)
	v, err := strconv.ParseInt(text, 10, 32)
	if errors.Is(err, strconv.ErrRange) {
		d.fail(p, "%s is out of range", text)
		return false
	}
	if err != nil {
		d.fail(p, "want a whole decimal number, got %s", text)
		return false
	}
	*dst = int(v)
	return true
}

// number decodes a decimal number, whole or not.
func (d *decoder) number(m map[string]ast.Node, path, key string, dst *float64) bool {
	n, p := d.value(m, path, key)
	if n == nil {
		return false
	}
	switch n.(type) {
	case *ast.IntegerNode, *ast.FloatNode:
	default:
		d.fail(p, "want a number, got %s", kind(n))
		return false
	}
	s := tokenValue(n)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !isNumber(s) {
		d.fail(p, "want a decimal number such as 30 or 29.97, got %s", s)
		return false
	}
	*dst = v
	return true
}

// boolean decodes true or false.
func (d *decoder) boolean(m map[string]ast.Node, path, key string, dst *bool) bool {
	n, p := d.value(m, path, key)
	if n == nil {
		return false
	}
	b, ok := n.(*ast.BoolNode)
	if !ok {
		d.fail(p, "want true or false, got %s", kind(n))
		return false
	}
	*dst = b.Value
	return true
}

// bitrate decodes a bit rate: "5000k", "1.5M" or a bare number of bits per second.
func (d *decoder) bitrate(m map[string]ast.Node, path, key string, dst *int64) bool {
	n, p := d.value(m, path, key)
	if n == nil {
		return false
	}
	s, ok := scalarText(n)
	if !ok {
		d.fail(p, "want a bitrate such as 5000k, got %s", kind(n))
		return false
	}
	v, err := parseBitrate(s)
	if err != nil {
		d.fail(p, "%v", err)
		return false
	}
	*dst = v
	return true
}

// duration decodes a Go duration such as "2s" or the bare 0.
func (d *decoder) duration(m map[string]ast.Node, path, key string, dst *time.Duration) bool {
	n, p := d.value(m, path, key)
	if n == nil {
		return false
	}
	s, ok := scalarText(n)
	if !ok {
		d.fail(p, "want a duration such as 2s, got %s", kind(n))
		return false
	}
	v, err := parseDuration(s)
	if err != nil {
		d.fail(p, "%v", err)
		return false
	}
	*dst = v
	return true
}

// list decodes a sequence and returns its resolved items; ok is false when
// the key is absent or not a list.
func (d *decoder) list(m map[string]ast.Node, path, key string) ([]ast.Node, bool) {
	n, p := d.value(m, path, key)
	if n == nil {
		return nil, false
	}
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		d.fail(p, "want a list, got %s", kind(n))
		return nil, false
	}
	items := make([]ast.Node, len(seq.Values))
	for i, v := range seq.Values {
		ip := index(p, i)
		d.lines[ip] = nodeLine(v)
		if d.lines[ip] == 0 {
			d.lines[ip] = d.line(p)
		}
		items[i] = d.resolve(v, ip)
	}
	return items, true
}

// required reports a missing key and marks it.
func (d *decoder) required(m map[string]ast.Node, path string, keys ...string) {
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			d.fail(join(path, k), "required key is missing")
		}
	}
}

// ladder decodes the document body into l, over its defaults.
func (d *decoder) ladder(body ast.Node, l *Ladder) {
	body = d.resolve(body, "")
	if body == nil {
		return
	}
	m, ok := d.fields(body, "", topKeys)
	if !ok {
		return
	}
	d.str(m, "", "description", &l.Description)
	d.duration(m, "", "segment_duration", &l.SegmentDuration)
	d.duration(m, "", "window", &l.Window)
	d.enum(m, "", "encoder", encoders, &l.Encoder)
	d.enum(m, "", "fallback", fallbacks, &l.Fallback)
	d.boolean(m, "", "audio_only", &l.AudioOnly)
	d.boolean(m, "", "record", &l.Record)
	d.duration(m, "", "record_retention", &l.RecordRetention)

	if n, p := d.value(m, "", "video"); n != nil {
		d.video(n, p, &l.Video)
	}
	if items, ok := d.list(m, "", "audio"); ok {
		l.Audio = make([]Audio, 0, len(items))
		for i, item := range items {
			a := defaultAudio()
			d.audio(item, index("audio", i), &a)
			l.Audio = append(l.Audio, a)
		}
	}
}

func (d *decoder) video(n ast.Node, path string, v *Video) {
	m, ok := d.fields(n, path, videoKeys)
	if !ok {
		return
	}
	d.enum(m, path, "codec", videoCodecs, &v.Codec)
	d.enum(m, path, "preset", presets, &v.Preset)
	d.enum(m, path, "tune", tunes, &v.Tune)
	d.number(m, path, "max_fps", &v.MaxFPS)
	d.boolean(m, path, "shed_top_rung", &v.ShedTopRung)
	items, ok := d.list(m, path, "renditions")
	if !ok {
		return
	}
	v.Renditions = make([]Rendition, 0, len(items))
	for i, item := range items {
		var r Rendition
		d.rendition(item, index(join(path, "renditions"), i), &r)
		v.Renditions = append(v.Renditions, r)
	}
}

func (d *decoder) rendition(n ast.Node, path string, r *Rendition) {
	if n == nil {
		d.bad[path] = true
		return
	}
	m, ok := d.fields(n, path, renditionKeys)
	if !ok {
		return
	}
	d.required(m, path, "name", "height", "bitrate")
	d.str(m, path, "name", &r.Name)
	d.integer(m, path, "height", &r.Height)
	d.bitrate(m, path, "bitrate", &r.Bitrate)
	d.bitrate(m, path, "maxrate", &r.MaxRate)
	d.bitrate(m, path, "bufsize", &r.BufSize)
	d.enum(m, path, "profile", h264Profiles, &r.Profile)
	d.enum(m, path, "encoder", rungEncoders, &r.Encoder)
}

func (d *decoder) audio(n ast.Node, path string, a *Audio) {
	if n == nil {
		d.bad[path] = true
		return
	}
	m, ok := d.fields(n, path, audioKeys)
	if !ok {
		return
	}
	d.required(m, path, "name", "bitrate")
	d.str(m, path, "name", &a.Name)
	d.enum(m, path, "codec", audioCodecs, &a.Codec)
	d.bitrate(m, path, "bitrate", &a.Bitrate)
	d.integer(m, path, "channels", &a.Channels)
	d.integer(m, path, "sample_rate", &a.SampleRate)
	d.integer(m, path, "track", &a.Track)
	var lang string
	if d.str(m, path, "language", &lang) {
		switch {
		case !ValidLanguage(lang):
			d.fail(join(path, "language"), "%q is not a language tag: use a BCP 47 tag such as en, fr or pt-BR", lang)
		case Language(lang) == "":
			d.fail(join(path, "language"), "%q says the language is undetermined: leave the key out to take the source track's own tag", lang)
		default:
			a.Language = Language(lang) // "eng" is written "en", as players expect
		}
	}
	if d.enum(m, path, "tracks", trackSets, &a.Tracks) {
		for _, k := range []string{"track", "language"} {
			if _, ok := m[k]; ok {
				d.fail(join(path, k), "cannot go with tracks: all, which takes every source track with its own language")
			}
		}
	}
}
