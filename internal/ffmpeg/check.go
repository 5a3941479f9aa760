package ffmpeg

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/transcoderd/transcoderd/internal/supervise"
)

// MinVersion is the oldest ffmpeg release whose options mean what BuildArgs means by
// them. Before 5.0 the RTSP demuxer's -timeout was how long to wait for an incoming
// connection: it made every RTSP job listen instead of connect (the socket timeout was
// -stimeout). Ubuntu 22.04 ships 4.4; Debian 12 ships 5.1, the version the tests run.
var MinVersion = Version{Major: 5, Minor: 0}

// Version is an ffmpeg release number.
type Version struct{ Major, Minor int }

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Less reports whether v is an older release than w.
func (v Version) Less(w Version) bool {
	return v.Major < w.Major || v.Major == w.Major && v.Minor < w.Minor
}

// ParseVersion reads the release from what "ffmpeg -version" calls its version:
// "5.1.6-0+deb12u1", "4.4.2-0ubuntu0.22.04.1", "n6.1.1", "7.1". ok is false for builds
// from git ("N-112233-gabcdef", "git-2024-01-01-abcdef"), which carry no release number.
func ParseVersion(s string) (v Version, ok bool) {
	s = strings.TrimPrefix(s, "n")
	major, rest, found := strings.Cut(s, ".")
	if !found {
		return Version{}, false
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(rest)
	}
	var err1, err2 error
	v.Major, err1 = strconv.Atoi(major)
	v.Minor, err2 = strconv.Atoi(rest[:end])
	if err1 != nil || err2 != nil || end == 0 {
		return Version{}, false
	}
	return v, true
}

// Check finds ffmpeg and ffprobe (paths, or names looked up in PATH; "" means
// "ffmpeg" and "ffprobe"), checks that this ffmpeg has what BuildArgs uses (the
// libx264 and aac encoders, the hls muxer) and returns its version, e.g.
// "5.1.6-0+deb12u1". Its errors say what to install; all problems are reported
// at once.
func Check(ctx context.Context, ffmpegPath, ffprobePath string) (version string, err error) {
	if ffmpegPath == "" {
		ffmpegPath = "ffmpeg"
	}
	if ffprobePath == "" {
		ffprobePath = "ffprobe"
	}
	var errs []error
	ffprobe, err := exec.LookPath(ffprobePath)
	if err != nil {
		errs = append(errs, notFound("ffprobe", ffprobePath, err))
	} else if _, err := run(ctx, ffprobe, "-hide_banner", "-version"); err != nil {
		errs = append(errs, fmt.Errorf("ffprobe at %s does not run: %w", ffprobe, err))
	}
	ffmpeg, err := exec.LookPath(ffmpegPath)
	if err != nil {
		errs = append(errs, notFound("ffmpeg", ffmpegPath, err))
		return "", errors.Join(errs...)
	}

	out, err := run(ctx, ffmpeg, "-hide_banner", "-version")
	if err != nil {
		errs = append(errs, fmt.Errorf("ffmpeg at %s does not run: %w", ffmpeg, err))
		return "", errors.Join(errs...)
	}
	version = parseVersion(out)
	if err := checkVersion(ctx, ffmpeg, version); err != nil {
		errs = append(errs, err)
	}

	encoders, err := run(ctx, ffmpeg, "-hide_banner", "-encoders")
	if err != nil {
		errs = append(errs, fmt.Errorf("list ffmpeg encoders: %w", err))
	} else {
		names := listed(encoders)
		if !names["libx264"] {
			errs = append(errs, fmt.Errorf("ffmpeg at %s has no libx264 encoder: install an ffmpeg built with --enable-gpl --enable-libx264, e.g. `sudo apt-get install ffmpeg` on Debian/Ubuntu", ffmpeg))
		}
		if !names["aac"] {
			errs = append(errs, fmt.Errorf("ffmpeg at %s has no aac encoder: install a full ffmpeg build, e.g. `sudo apt-get install ffmpeg` on Debian/Ubuntu", ffmpeg))
		}
	}
	muxers, err := run(ctx, ffmpeg, "-hide_banner", "-muxers")
	if err != nil {
		errs = append(errs, fmt.Errorf("list ffmpeg muxers: %w", err))
	} else if !listed(muxers)["hls"] {
		errs = append(errs, fmt.Errorf("ffmpeg at %s has no hls muxer: install a full ffmpeg build, e.g. `sudo apt-get install ffmpeg` on Debian/Ubuntu", ffmpeg))
	}
	return version, errors.Join(errs...)
}

// checkVersion refuses an ffmpeg older than MinVersion. A build from git has no release
// number: its RTSP demuxer's help tells instead whether -timeout is the socket timeout.
func checkVersion(ctx context.Context, ffmpeg, version string) error {
	old := fmt.Errorf("ffmpeg %s at %s is older than %s, the oldest transcoderd supports (before 5.0 an RTSP source's -timeout makes ffmpeg listen instead of connect): install ffmpeg %s or newer (Debian 12, Ubuntu 24.04), or run the Docker image", version, ffmpeg, MinVersion, MinVersion)
	if v, ok := ParseVersion(version); ok {
		if v.Less(MinVersion) {
			return old
		}
		return nil
	}
	help, err := run(ctx, ffmpeg, "-hide_banner", "-h", "demuxer=rtsp")
	if err != nil {
		return fmt.Errorf("ffmpeg %s at %s: read its RTSP options to tell its age: %w", version, ffmpeg, err)
	}
	for _, line := range strings.Split(string(help), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "-timeout" {
			if strings.Contains(line, "socket") {
				return nil
			}
			return old
		}
	}
	return old
}

func notFound(tool, path string, err error) error {
	where := "in PATH"
	if strings.ContainsRune(path, '/') {
		where = "at " + path
	}
	return fmt.Errorf("%s not found %s: install it, e.g. `sudo apt-get install ffmpeg` on Debian/Ubuntu: %w", tool, where, err)
}

// run runs a short command and returns its stdout; its error carries the last
// stderr line.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	var stdout bytes.Buffer
	r := supervise.Run(ctx, supervise.Spec{Path: name, Args: args, Stdout: &stdout, TailLines: 4})
	if r.Err != nil {
		if last := r.Last(); last != "" {
			return nil, fmt.Errorf("%s: %w", last, r.Err)
		}
		return nil, r.Err
	}
	return stdout.Bytes(), nil
}

// parseVersion reads the version from "ffmpeg version 5.1.6-0+deb12u1 Copyright ...".
func parseVersion(out []byte) string {
	line, _, _ := bytes.Cut(out, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) >= 3 && f[1] == "version" {
		return f[2]
	}
	return strings.TrimSpace(string(line))
}

// listed returns the names in an "ffmpeg -encoders" or "-muxers" listing, whose
// lines are " V....D libx264   description" or " E hls   description" after a
// legend that ends with a line of dashes.
func listed(out []byte) map[string]bool {
	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	body := false
	for sc.Scan() {
		line := sc.Text()
		if !body {
			rule := strings.TrimSpace(line)
			body = rule != "" && strings.Trim(rule, "-") == ""
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		for _, n := range strings.Split(f[1], ",") {
			names[n] = true
		}
	}
	return names
}
