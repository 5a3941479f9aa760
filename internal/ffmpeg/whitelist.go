package ffmpeg

import (
	"strings"

	"github.com/transcoderd/transcoderd/internal/source"
)

// A source from the API is only as safe as what ffmpeg does with it. ffmpeg
// follows references inside a source: an HLS playlist names segment URLs, a
// concat list names files, a DASH manifest names anything. An allowed source
// (a file inside the media root, an https URL) must not become a way to read a
// local file outside the media root or to reach another protocol. So every
// input, for ffmpeg and for ffprobe, carries a protocol whitelist for its
// source kind, and a file also carries a demuxer whitelist of plain container
// formats, none of which opens other files. Nested opens (playlist segments,
// keys) inherit the whitelists, so ffmpeg refuses them with "not on whitelist".

// protocolWhitelist is, per source kind, every protocol ffmpeg needs to read
// that kind and nothing else. No network kind may use "file" (or "concat",
// "subfile", "data", "pipe"...); a file may use "file" only.
var protocolWhitelist = map[source.Kind]string{
	source.RTMP: "rtmp,rtmps,tcp,tls",
	// RTSP is a demuxer, not a protocol: it opens tcp (or tls for rtsps), and
	// rtp/srtp/udp for the UDP transports.
	source.RTSP: "rtsp,rtsps,rtp,srtp,udp,tcp,tls",
	source.SRT:  "srt,udp",
	// An HLS pull: playlists and segments over http(s), AES-128 segments
	// through crypto.
	source.HTTP: "http,https,tcp,tls,crypto",
	source.File: "file",
	// A push source: MPEG-TS on the pipe the ingest hub writes, and nothing else.
	source.Push: "pipe",
}

// fileFormats is the demuxer whitelist for file sources: containers and
// elementary streams that hold their media themselves. Left out on purpose:
// hls, dash, concat, imf, webm_dash_manifest (they open the files or URLs they
// name), image2 (file name patterns), sdp (opens network streams), lavfi
// (filters can read files), and every device.
const fileFormats = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,mpegts,mpeg,mpegvideo,flv,live_flv," +
	"avi,asf,nut,mxf,dv,ivf,ogg,wav,w64,aiff,caf,mp3,aac,ac3,eac3,flac,h264,hevc,m4v"

// whitelistArgs returns the input options that confine ffmpeg or ffprobe to
// what a source of that kind needs. An unknown kind gets the strictest list:
// local files only, through the file demuxer whitelist.
func whitelistArgs(kind source.Kind) []string {
	protocols, ok := protocolWhitelist[kind]
	if !ok || kind == source.File {
		return []string{"-protocol_whitelist", protocolWhitelist[source.File], "-format_whitelist", fileFormats}
	}
	if kind == source.Push {
		return []string{"-protocol_whitelist", protocols, "-format_whitelist", "mpegts"}
	}
	return []string{"-protocol_whitelist", protocols}
}

// whitelistRefusal finds, in ffmpeg's stderr lines, the one that says a
// whitelist refused a protocol or a format, and rewrites it for people:
//
//	[hls @ 0x5601] Format not on whitelist 'mov,...'            -> hls format refused: ...
//	[file @ 0x5601] Protocol 'file' not on whitelist 'http,...'! -> protocol 'file' refused: ...
//
// It returns "" when no line says so. ffmpeg's last line is a generic
// "Invalid argument" or "Invalid data found when processing input".
func whitelistRefusal(lines []string) string {
	for _, line := range lines {
		if !strings.Contains(line, "not on whitelist") {
			continue
		}
		name, rest := "", line
		if strings.HasPrefix(line, "[") {
			if ctx, after, ok := strings.Cut(line[1:], "] "); ok {
				name, _, _ = strings.Cut(ctx, " @ ")
				rest = after
			}
		}
		switch {
		case strings.HasPrefix(rest, "Format not on whitelist") && name != "":
			return name + " format refused: a file source may only be a plain media container, not a playlist or list that refers to other files"
		case strings.HasPrefix(rest, "Protocol '"):
			proto, _, _ := strings.Cut(strings.TrimPrefix(rest, "Protocol '"), "'")
			return "protocol '" + proto + "' refused: the source (or a playlist inside it) asked for a protocol this kind of source may not use"
		}
		return strings.TrimSpace(rest)
	}
	return ""
}
