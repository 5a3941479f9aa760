package testmedia

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// probeStream is the part of `ffprobe -show_streams -of json` the tests read.
type probeStream struct {
	CodecName    string `json:"codec_name"`
	CodecType    string `json:"codec_type"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	RFrameRate   string `json:"r_frame_rate"`
	SampleRate   string `json:"sample_rate"`
	Channels     int    `json:"channels"`
	PixFmt       string `json:"pix_fmt"`
	CodecTagName string `json:"codec_tag_string"`
	Tags         struct {
		Language string `json:"language"`
	} `json:"tags"`
}

type probeResult struct {
	Streams []probeStream `json:"streams"`
	Format  struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

// stream returns the first stream of codecType, or false.
func (p probeResult) stream(codecType string) (probeStream, bool) {
	for _, s := range p.Streams {
		if s.CodecType == codecType {
			return s, true
		}
	}
	return probeStream{}, false
}

// ffprobe runs `ffprobe -v error -show_streams -show_format -of json` on
// target with extra input options, within 30 s.
func ffprobe(target string, extra ...string) (probeResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"-v", "error"}, extra...)
	args = append(args, "-show_streams", "-show_format", "-of", "json", target)
	cmd := exec.CommandContext(ctx, "ffprobe", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return probeResult{}, fmt.Errorf("ffprobe %s: %w: %s", target, err, strings.TrimSpace(stderr.String()))
	}
	var res probeResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return probeResult{}, fmt.Errorf("ffprobe %s: decode json: %w", target, err)
	}
	return res, nil
}

// checkLive checks that a live source carries h264 video of the given size
// and 48 kHz stereo AAC.
func checkLive(res probeResult, width, height int) error {
	var errs []error
	v, ok := res.stream("video")
	switch {
	case !ok:
		errs = append(errs, errors.New("no video stream"))
	case v.CodecName != "h264" || v.Width != width || v.Height != height:
		errs = append(errs, fmt.Errorf("video %s %dx%d, want h264 %dx%d", v.CodecName, v.Width, v.Height, width, height))
	}
	a, ok := res.stream("audio")
	switch {
	case !ok:
		errs = append(errs, errors.New("no audio stream"))
	case a.CodecName != "aac" || a.SampleRate != "48000" || a.Channels != 2:
		errs = append(errs, fmt.Errorf("audio %s %s Hz %d ch, want aac 48000 Hz 2 ch", a.CodecName, a.SampleRate, a.Channels))
	}
	return errors.Join(errs...)
}

// childFFmpegs lists the ffmpeg processes whose parent is this test binary.
func childFFmpegs(t *testing.T) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil || len(stats) == 0 {
		t.Fatalf("cannot list /proc: %v", err)
	}
	var pids []int
	for _, path := range stats {
		data, err := os.ReadFile(path)
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		s := string(data)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		comm := s[open+1 : closing]
		fields := strings.Fields(s[closing+1:])
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		pid, _ := strconv.Atoi(strings.TrimSpace(s[:open]))
		if ppid == os.Getpid() && comm == "ffmpeg" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// requireGone fails the test unless every process and process group in
// pids is gone, and no ffmpeg child of this binary remains.
func requireGone(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process group %d still exists after clean-up (kill -0: %v)", pid, err)
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after clean-up (kill -0: %v)", pid, err)
		}
	}
	if left := childFFmpegs(t); len(left) > 0 {
		t.Errorf("ffmpeg children left after clean-up: %v", left)
	}
}
