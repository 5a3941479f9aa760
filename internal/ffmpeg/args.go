// Package ffmpeg owns everything transcoderd says to and hears from the ffmpeg and
// ffprobe binaries: building the transcode argv from a plan, probing a source,
// reading -progress output, keeping the tail of stderr, and checking that the
// installed ffmpeg can do the job. It does not run or supervise the transcode; the
// job package does.
package ffmpeg

// Args is an ordered ffmpeg argument list. Unlike a map of options it keeps the
// order written and lets a key repeat, which ffmpeg needs: options apply to the
// next -i or output file, and -map, -c:v and friends appear once per output. The
// zero value is an empty list ready to use.
type Args struct {
	list []string
}

// Add appends args as they are.
func (a *Args) Add(args ...string) *Args {
	a.list = append(a.list, args...)
	return a
}

// Flag appends the option "-"+name followed by value. name is written without
// its leading dash: Flag("c:v", "libx264") appends "-c:v", "libx264".
func (a *Args) Flag(name, value string) *Args {
	a.list = append(a.list, "-"+name, value)
	return a
}

// Strings returns a copy of the arguments.
func (a *Args) Strings() []string {
	out := make([]string, len(a.list))
	copy(out, a.list)
	return out
}
