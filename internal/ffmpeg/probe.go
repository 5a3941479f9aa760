package ffmpeg

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/supervise"
)

// ErrNoMedia is wrapped by Probe when the source has neither a video nor an
// audio stream.
var ErrNoMedia = errors.New("no video or audio stream")

// maxFPS bounds a believable frame rate; beyond it (FLV's 1000, broken
// timestamps) Probe reports the rate as unknown.
const maxFPS = 300

// Probe asks ffprobe (a path or a name looked up in PATH; "" means "ffprobe")
// what source holds: the first video stream that is not cover art and the first
// audio stream. ctx bounds the run; a network source that never answers costs
// the 10 s socket timeout at most. On failure the error carries ffprobe's last
// stderr line ("Connection refused", "No such file or directory") with any
// password or query values in the source masked, or, when a whitelist stopped
// it (see whitelist.go), what was refused.
func Probe(ctx context.Context, ffprobe string, source string, kind SourceKind) (ladder.SourceInfo, error) {
	if ffprobe == "" {
		ffprobe = "ffprobe"
	}
	shown := Redact(source)
	opts, input := inputArgs(kind, source, false)
	var a Args
	a.Flag("v", "error")
	a.Flag("print_format", "json")
	a.Add("-show_streams", "-show_format")
	a.Add(opts...)
	a.Flag("analyzeduration", "5000000")
	a.Flag("probesize", "5000000")
	a.Add(input)

	var stdout bytes.Buffer
	run := supervise.Run(ctx, supervise.Spec{Path: ffprobe, Args: a.Strings(), Stdout: &stdout, TailLines: 8, Grace: time.Second})
	if err := run.Err; err != nil {
		// A live HLS playlist whose segments are refused makes ffprobe retry
		// until ctx ends: the refusal is still the reason to give.
		refused := whitelistRefusal(run.Tail)
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		if refused != "" {
			return ladder.SourceInfo{}, fmt.Errorf("probe %s: %s: %w", shown, refused, err)
		}
		if ctx.Err() != nil {
			return ladder.SourceInfo{}, fmt.Errorf("probe %s: %w", shown, err)
		}
		if last := run.Last(); last != "" {
			// ffprobe says "<input>: <reason>"; the error names the source already.
			last = strings.TrimPrefix(last, input+": ")
			last = Redactor(source)(last)
			return ladder.SourceInfo{}, fmt.Errorf("probe %s: %s: %w", shown, last, err)
		}
		return ladder.SourceInfo{}, fmt.Errorf("probe %s: %w", shown, err)
	}
	info, err := parseProbe(stdout.Bytes(), kind)
	if err != nil {
		return ladder.SourceInfo{}, fmt.Errorf("probe %s: %w", shown, err)
	}
	return info, nil
}

// probeOutput is the part of ffprobe's JSON that Probe reads.
type probeOutput struct {
	Streams []struct {
		CodecType         string `json:"codec_type"`
		CodecName         string `json:"codec_name"`
		Width             int    `json:"width"`
		Height            int    `json:"height"`
		SampleAspectRatio string `json:"sample_aspect_ratio"`
		AvgFrameRate      string `json:"avg_frame_rate"`
		RFrameRate        string `json:"r_frame_rate"`
		Channels          int    `json:"channels"`
		SampleRate        string `json:"sample_rate"`
		Disposition       struct {
			AttachedPic int `json:"attached_pic"`
		} `json:"disposition"`
		Tags struct {
			Rotate string `json:"rotate"`
		} `json:"tags"`
		SideDataList []struct {
			Rotation float64 `json:"rotation"`
		} `json:"side_data_list"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

// parseProbe reads ffprobe's JSON output.
func parseProbe(data []byte, kind SourceKind) (ladder.SourceInfo, error) {
	var out probeOutput
	if err := json.Unmarshal(data, &out); err != nil {
		return ladder.SourceInfo{}, fmt.Errorf("read ffprobe output: %w", err)
	}
	var info ladder.SourceInfo
	for _, s := range out.Streams {
		switch {
		case s.CodecType == "video" && !info.HasVideo && s.Disposition.AttachedPic == 0 && s.Width > 0 && s.Height > 0:
			info.HasVideo = true
			info.VideoCodec = s.CodecName
			info.Width, info.Height = displaySize(s.Width, s.Height, s.SampleAspectRatio)
			rot := s.Tags.Rotate
			for _, sd := range s.SideDataList {
				if sd.Rotation != 0 {
					rot = strconv.FormatFloat(sd.Rotation, 'f', -1, 64)
				}
			}
			if r, err := strconv.ParseFloat(rot, 64); err == nil && math.Mod(math.Abs(r), 180) == 90 {
				// ffmpeg rotates the picture upright before our filters run.
				info.Width, info.Height = info.Height, info.Width
			}
			info.FPS = rate(s.AvgFrameRate)
			if info.FPS == 0 {
				info.FPS = rate(s.RFrameRate)
			}
		case s.CodecType == "audio" && !info.HasAudio:
			info.HasAudio = true
			info.AudioCodec = s.CodecName
			info.Channels = s.Channels
			info.SampleRate, _ = strconv.Atoi(s.SampleRate)
		}
	}
	if !info.HasVideo && !info.HasAudio {
		return ladder.SourceInfo{}, ErrNoMedia
	}
	if kind == File || kind == HTTP {
		// Live sources report no duration or a meaningless one; an HLS playlist
		// has one only when it is VOD (it ends with #EXT-X-ENDLIST).
		if d, err := strconv.ParseFloat(out.Format.Duration, 64); err == nil && d > 0 && d < 1e9 {
			info.Duration = time.Duration(d * float64(time.Second))
		}
	}
	return info, nil
}

// displaySize applies a sample aspect ratio ("4:3"; "0:1" or "" mean square)
// to a coded size, keeping the height and rounding the width to even.
func displaySize(w, h int, sar string) (int, int) {
	num, den, ok := ratio(sar, ":")
	if !ok || num <= 0 || den <= 0 || num == den {
		return w, h
	}
	dw := int(math.Round(float64(w)*float64(num)/float64(den)/2)) * 2
	return max(dw, 2), h
}

// rate reads a frame rate like "30000/1001"; "0/0", junk or an implausible rate
// is 0.
func rate(s string) float64 {
	num, den, ok := ratio(s, "/")
	if !ok || num <= 0 || den <= 0 {
		return 0
	}
	f := float64(num) / float64(den)
	if f > maxFPS {
		return 0
	}
	return f
}

func ratio(s, sep string) (num, den int64, ok bool) {
	a, b, found := strings.Cut(s, sep)
	if !found {
		return 0, 0, false
	}
	n, err1 := strconv.ParseInt(a, 10, 64)
	d, err2 := strconv.ParseInt(b, 10, 64)
	return n, d, err1 == nil && err2 == nil
}

// Mask is what Redact puts in place of a secret.
const Mask = "xxxxx"

// Redact masks what in a source URL may be a secret, so the source can go in
// errors, logs and API answers: the password, every query value (an SRT
// passphrase, a token) and the fragment. The password is also masked where it
// appears decoded in the user name, the path and the query keys, and then, as it
// is, path-escaped or query-escaped, anywhere in the result. A string that is not
// a URL with a scheme is returned as it is.
func Redact(source string) string {
	u, err := url.Parse(source)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		return source
	}
	pw, hasPW := u.User.Password()
	hide := func(s string) string {
		if hasPW && pw != "" {
			return maskAll(s, pw)
		}
		return s
	}
	if hasPW {
		u.User = url.UserPassword(hide(u.User.Username()), Mask)
	}
	if p := hide(u.Path); p != u.Path {
		u.Path, u.RawPath = p, "" // re-escaped from the masked path
	}
	if u.RawQuery != "" {
		q := url.Values{}
		for k := range u.Query() {
			q[hide(k)] = []string{Mask}
		}
		u.RawQuery = q.Encode()
	}
	if u.Fragment != "" {
		u.Fragment, u.RawFragment = Mask, ""
	}
	shown := u.String()
	if hasPW && pw != "" {
		shown = maskAll(shown, pw, url.PathEscape(pw), url.QueryEscape(pw))
	}
	return shown
}

// maskAll replaces every occurrence of each secret in s with Mask, again and again
// until none is left: a replacement can make a new occurrence with what is around
// it. Secrets that Mask itself contains are left alone (they cannot be told from
// it). The loop ends: each replacement removes a character other than Mask's own,
// or shortens a run of them.
func maskAll(s string, secrets ...string) string {
	for again := true; again; {
		again = false
		for _, secret := range secrets {
			if secret != "" && !strings.Contains(Mask, secret) && strings.Contains(s, secret) {
				s = strings.ReplaceAll(s, secret, Mask)
				again = true
			}
		}
	}
	return s
}

// Redactor returns a function that masks, in a line ffmpeg printed about source,
// what Redact masks: the source as given becomes Redact(source), and a password
// or query value of it shown elsewhere in the line (ffmpeg names a URL in parts
// at times) is masked too.
func Redactor(source string) func(string) string {
	shown := Redact(source)
	u, err := url.Parse(source)
	if shown == source || err != nil {
		return func(line string) string { return line }
	}
	pairs := []string{source, shown}
	var secrets []string
	if pw, ok := u.User.Password(); ok && pw != "" {
		_, escaped, _ := strings.Cut(u.User.String(), ":") // user:password, escaped
		if len(pw) >= 3 {
			secrets = append(secrets, pw, escaped)
		} else { // not every "a" of every line: only where it is a password
			pairs = append(pairs, ":"+pw+"@", ":"+Mask+"@", ":"+escaped+"@", ":"+Mask+"@")
		}
	}
	for _, pair := range strings.Split(u.RawQuery, "&") {
		if _, v, ok := strings.Cut(pair, "="); ok && len(v) >= 3 {
			secrets = append(secrets, v) // shorter values (mode=1) are not worth garbling every line for
		}
	}
	r := strings.NewReplacer(pairs...)
	return func(line string) string {
		return maskAll(r.Replace(line), secrets...)
	}
}
