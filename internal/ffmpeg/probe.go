package ffmpeg

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/source"
	"github.com/transcoderd/transcoderd/internal/supervise"
)

// ErrNoMedia is wrapped by Probe when the source has neither a video nor an
// audio stream.
var ErrNoMedia = errors.New("no video or audio stream")

// maxFPS bounds a believable frame rate; beyond it (FLV's 1000, broken
// timestamps) Probe reports the rate as unknown.
const maxFPS = 300

// Probe asks ffprobe (a path or a name looked up in PATH; "" means "ffprobe")
// what source holds: the first video stream that is not cover art, and every audio
// stream (ladder.SourceInfo.AudioTracks) with its language tag and title; the first
// one's codec, channels and sample rate are also the SourceInfo's own. ctx bounds the
// run; a network source that never answers costs the 10 s socket timeout at most. On
// failure the error carries ffprobe's last
// stderr line ("Connection refused", "No such file or directory") with any
// password or query values in the source masked, or, when a whitelist stopped
// it (see whitelist.go), what was refused. An RTSP source is probed over TCP,
// and over UDP when the server refuses TCP (see ProbeTransport).
func Probe(ctx context.Context, ffprobe string, src string, kind source.Kind) (ladder.SourceInfo, error) {
	info, _, err := ProbeTransport(ctx, ffprobe, src, kind, source.TransportAuto)
	return info, err
}

// ProbeTransport is Probe for an RTSP source whose transport is mode
// (source.Source.Transport): over the one it forces, or in auto mode ("" too) over
// TCP, then over UDP when the server refuses TCP (461). It returns the transport
// that got the answer, for the job's first run (RTSPTransport.Probed); "" for
// other kinds, which ignore mode. An error says when the transport was the
// trouble: a refused forced transport, or UDP that brought nothing.
func ProbeTransport(ctx context.Context, ffprobe string, src string, kind source.Kind, mode source.Transport) (ladder.SourceInfo, source.Transport, error) {
	shown := source.Redact(src)
	var tr source.Transport
	if kind == source.RTSP {
		tr = (&RTSPTransport{Mode: mode}).Next()
	}
	info, stderr, err := probe(ctx, ffprobe, src, kind, tr)
	fellBack := false
	if err != nil && tr == source.TransportTCP && mode != source.TransportTCP && refused(stderr) && ctx.Err() == nil {
		fellBack, tr = true, source.TransportUDP
		info, stderr, err = probe(ctx, ffprobe, src, kind, tr)
	}
	if err == nil {
		return info, tr, nil
	}
	var hint string
	switch {
	case kind != source.RTSP:
	case refused(stderr) && fellBack:
		hint = bothRefused
	case refused(stderr):
		hint = forcedHint(tr)
	case tr == source.TransportUDP && (errors.Is(err, ErrNoMedia) || silent(stderr)):
		hint = udpSilent
		if fellBack {
			hint = tcpRefused + ", and " + hint
		}
	}
	if hint != "" {
		return ladder.SourceInfo{}, "", fmt.Errorf("probe %s: %s: %w", shown, hint, err)
	}
	return ladder.SourceInfo{}, "", fmt.Errorf("probe %s: %w", shown, err)
}

// probe runs ffprobe once, over transport tr for an RTSP source, and returns its
// last stderr lines (masked) with the outcome. Errors do not name the source.
func probe(ctx context.Context, ffprobe string, src string, kind source.Kind, tr source.Transport) (ladder.SourceInfo, []string, error) {
	if ffprobe == "" {
		ffprobe = "ffprobe"
	}
	opts, input := inputArgs(kind, src, false, tr)
	var a Args
	a.Flag("v", "error")
	a.Flag("print_format", "json")
	a.Add("-show_streams", "-show_format")
	a.Add(opts...)
	a.Flag("analyzeduration", "5000000")
	a.Flag("probesize", "5000000")
	a.Add(input)

	var stdout bytes.Buffer
	run := supervise.Run(ctx, supervise.Spec{Path: ffprobe, Args: a.Strings(), Stdout: &stdout, TailLines: 8,
		Redact: source.Redactor(src), Grace: time.Second})
	lines := run.Tail
	if err := run.Err; err != nil {
		// A live HLS playlist whose segments are refused makes ffprobe retry
		// until ctx ends: the refusal is still the reason to give.
		refused := whitelistRefusal(lines)
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		if refused != "" {
			return ladder.SourceInfo{}, lines, fmt.Errorf("%s: %w", refused, err)
		}
		if ctx.Err() != nil {
			return ladder.SourceInfo{}, lines, err
		}
		if last := run.Last(); last != "" {
			// ffprobe says "<input>: <reason>"; the error names the source already.
			last = strings.TrimPrefix(last, source.Redact(input)+": ")
			return ladder.SourceInfo{}, lines, fmt.Errorf("%s: %w", last, err)
		}
		return ladder.SourceInfo{}, lines, err
	}
	info, err := parseProbe(stdout.Bytes(), kind)
	return info, lines, err
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
			Rotate   string `json:"rotate"`
			Language string `json:"language"`
			Title    string `json:"title"`
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
func parseProbe(data []byte, kind source.Kind) (ladder.SourceInfo, error) {
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
		case s.CodecType == "audio":
			t := ladder.AudioTrack{
				Index:    len(info.AudioTracks),
				Codec:    s.CodecName,
				Language: ladder.Language(s.Tags.Language),
				Channels: s.Channels,
				Title:    cleanTitle(s.Tags.Title),
			}
			t.SampleRate, _ = strconv.Atoi(s.SampleRate)
			info.AudioTracks = append(info.AudioTracks, t)
			if !info.HasAudio {
				info.HasAudio = true
				info.AudioCodec, info.Channels, info.SampleRate = t.Codec, t.Channels, t.SampleRate
			}
		}
	}
	if !info.HasVideo && !info.HasAudio {
		return ladder.SourceInfo{}, ErrNoMedia
	}
	if kind == source.File || kind == source.HTTP {
		// Live sources report no duration or a meaningless one; an HLS playlist
		// has one only when it is VOD (it ends with #EXT-X-ENDLIST).
		if d, err := strconv.ParseFloat(out.Format.Duration, 64); err == nil && d > 0 && d < 1e9 {
			info.Duration = time.Duration(d * float64(time.Second))
		}
	}
	return info, nil
}

// maxTitle bounds a track title kept from the source, in runes.
const maxTitle = 64

// cleanTitle keeps a source track's title fit to show in a player's menu and to quote
// in a playlist: printable, without quotes, on one line with single spaces, at most
// maxTitle runes.
func cleanTitle(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsSpace(r):
			return ' '
		case r == '"' || r == utf8.RuneError || !unicode.IsPrint(r):
			return -1
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > maxTitle {
		s = strings.TrimSpace(string(r[:maxTitle]))
	}
	return s
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
