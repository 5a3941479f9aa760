package gpu

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/supervise"
)

// Probe defaults.
const (
	DefaultTrialWidth   = 1280
	DefaultTrialHeight  = 720
	DefaultTrialTimeout = 30 * time.Second
	DefaultMaxSessions  = 16

	trialFPS     = 30
	trialSeconds = 1.0
	trialSegment = 0.5 // keyframes asked at frames 0 and 15 of 30
	trialPreset  = "veryfast"
)

// Prober finds the machine's GPUs and what each can really do. Its zero value
// probes the real machine with "ffmpeg" and "nvidia-smi" from PATH.
type Prober struct {
	FFmpeg    string // ffmpeg binary, name or path; "" means "ffmpeg"
	NvidiaSMI string // nvidia-smi binary, name or path; "" means "nvidia-smi"; absent is fine
	Root      string // filesystem root that sys/class/drm is read under; "" means "/"
	TempDir   string // where trial outputs go; "" means os.TempDir()

	Width, Height int           // trial encode size; 0 means 1280x720
	Timeout       time.Duration // limit per trial encode; 0 means 30 s
	// MaxSessions caps the search for concurrent encoder sessions; 0 means 16.
	// A device that opens this many is reported as "at least" that many and
	// its sessions are not limited by the budget.
	MaxSessions int
}

// Capabilities is what a probe found: the ffmpeg build, every GPU with its driver,
// each backend's trial result with ffmpeg's own error line where it failed, the
// encoder sessions each device opens at once, and what "auto" resolves to.
type Capabilities struct {
	ProbedAt  time.Time `json:"probed_at"`
	TookMS    int64     `json:"took_ms"`
	FFmpeg    Build     `json:"ffmpeg"`
	NvidiaSMI string    `json:"nvidia_smi"` // "ok", "not found", or why it failed
	Devices   []Device  `json:"devices"`
	Auto      Choice    `json:"auto"`
	// Summary is one sentence per device and one for auto: what the log shows.
	Summary []string `json:"summary"`
	// Problems are errors of the probe itself (unreadable sysfs, a listing that
	// failed); the probe goes on without what they cost.
	Problems []string `json:"problems,omitempty"`
}

// Build is what the ffmpeg binary was built with, as far as hardware goes.
type Build struct {
	Encoders []string `json:"encoders"` // H.264 encoders listed: libx264 and the hardware ones
	HWAccels []string `json:"hwaccels"` // -hwaccels
	Filters  []string `json:"filters"`  // the hardware filters listed
}

// Choice is what a ladder's "auto" resolves to on this machine.
type Choice struct {
	Encoder string `json:"encoder"`          // a backend name; x264 when no GPU encoder works
	Device  string `json:"device,omitempty"` // Device.ID of the GPU it uses
	// DecodeOn is set when no encoder works but Device decodes and scales for
	// x264 (a datacenter GPU without NVENC).
	DecodeOn string `json:"decode_on,omitempty"`
	Reason   string `json:"reason"`
}

// EncoderResult is one backend tried on one device.
type EncoderResult struct {
	Backend string `json:"backend"` // nvenc, qsv, vaapi, amf
	Encoder string `json:"encoder"` // ffmpeg's name: h264_nvenc...
	Working bool   `json:"working"`
	// Error is ffmpeg's own line when the trial failed (or what the check
	// found: missing keyframes, too few frames), Kind what it means.
	Error string `json:"error,omitempty"`
	Kind  string `json:"kind,omitempty"`
	Trial *Trial `json:"trial,omitempty"`
	// Sessions is how many encoder sessions of this backend the device opened
	// at once (one ffmpeg, one output per session), measured with the others
	// that were open at the time (Device.SessionsInUse) still open.
	Sessions int `json:"sessions,omitempty"`
	// SessionsAtLeast is set when the search stopped at Prober.MaxSessions.
	SessionsAtLeast bool `json:"sessions_at_least,omitempty"`
	// SessionsError is ffmpeg's line that ended the search.
	SessionsError string `json:"sessions_error,omitempty"`
}

// Trial is one trial encode.
type Trial struct {
	OK        bool     `json:"ok"`
	Error     string   `json:"error,omitempty"`
	Kind      string   `json:"kind,omitempty"`
	Frames    int      `json:"frames"`              // frames of the first output
	Keyframes []int    `json:"keyframes,omitempty"` // their frame numbers
	TookMS    int64    `json:"took_ms"`
	Args      []string `json:"args"` // ffmpeg's argv, to run it by hand
}

// backendInfo is what the probe needs about one hardware backend.
type backendInfo struct {
	encoder  Encoder
	name     string   // ffmpeg encoder name
	frames   string   // hardware frame type of the job when this backend is used
	hwaccel  string   // what -hwaccels must list
	filters  []string // what -filters must list (one of each inner slice)
	vendors  []string // vendors it is tried on
	needVAAP bool     // needs the VAAPI driver of the device
}

// backends in the order "auto" prefers them.
var backends = []backendInfo{
	{encoder: NVENC{}, name: "h264_nvenc", frames: FramesCUDA, hwaccel: "cuda", filters: []string{"scale_cuda|scale_npp", "hwupload"}, vendors: []string{VendorNVIDIA}},
	{encoder: QSV{}, name: "h264_qsv", frames: FramesQSV, hwaccel: "qsv", filters: []string{"vpp_qsv", "hwupload"}, vendors: []string{VendorIntel}, needVAAP: true},
	{encoder: VAAPI{}, name: "h264_vaapi", frames: FramesVAAPI, hwaccel: "vaapi", filters: []string{"scale_vaapi", "hwupload"}, vendors: []string{VendorIntel, VendorAMD, VendorUnknown}, needVAAP: true},
	{encoder: AMF{}, name: "h264_amf", vendors: []string{VendorAMD}},
}

func backendByName(name string) *backendInfo {
	for i := range backends {
		if backends[i].encoder.Name() == name {
			return &backends[i]
		}
	}
	return nil
}

func (p *Prober) defaults() {
	if p.FFmpeg == "" {
		p.FFmpeg = "ffmpeg"
	}
	if p.NvidiaSMI == "" {
		p.NvidiaSMI = "nvidia-smi"
	}
	if p.Root == "" {
		p.Root = "/"
	}
	if p.Width <= 0 || p.Height <= 0 {
		p.Width, p.Height = DefaultTrialWidth, DefaultTrialHeight
	}
	if p.Timeout <= 0 {
		p.Timeout = DefaultTrialTimeout
	}
	if p.MaxSessions <= 0 {
		p.MaxSessions = DefaultMaxSessions
	}
}

// Probe runs the whole probe. It never fails: what it could not find out is
// said in the result. With no GPU it runs only ffmpeg's three listings.
func (p Prober) Probe(ctx context.Context) Capabilities {
	p.defaults()
	began := time.Now()
	c := Capabilities{ProbedAt: began.UTC(), Devices: []Device{}}
	problem := func(err error) { c.Problems = append(c.Problems, err.Error()) }

	c.FFmpeg = p.build(ctx, problem)

	devs, err := scanDRM(p.Root)
	if err != nil {
		problem(fmt.Errorf("read %s: %w", filepath.Join(p.Root, "sys/class/drm"), err))
	}
	smi, err := p.nvidiaSMI(ctx)
	switch {
	case errors.Is(err, exec.ErrNotFound):
		c.NvidiaSMI = "not found"
	case err != nil:
		c.NvidiaSMI = err.Error()
	default:
		c.NvidiaSMI = "ok"
		devs = mergeSMI(devs, smi)
	}
	if err != nil {
		// Without nvidia-smi, CUDA ordinals follow the PCI order of the NVIDIA
		// GPUs (CUDA_DEVICE_ORDER=PCI_BUS_ID).
		var nv []*Device
		for i := range devs {
			if devs[i].Vendor == VendorNVIDIA && devs[i].PCI != "" {
				nv = append(nv, &devs[i])
			}
		}
		sort.Slice(nv, func(a, b int) bool { return nv[a].PCI < nv[b].PCI })
		for i, d := range nv {
			idx := i
			d.CUDAIndex = &idx
		}
	}

	tmp, err := os.MkdirTemp(p.TempDir, "transcoderd-probe-")
	if err != nil {
		problem(fmt.Errorf("trial folder: %w", err))
	} else {
		defer os.RemoveAll(tmp)
	}
	for i := range devs {
		if ctx.Err() != nil {
			problem(fmt.Errorf("probe stopped: %w", ctx.Err()))
			break
		}
		p.probeDevice(ctx, &devs[i], c.FFmpeg, tmp)
	}
	if devs != nil {
		c.Devices = devs
	}
	c.Auto = auto(devs)
	for _, d := range devs {
		c.Summary = append(c.Summary, d.Summary)
	}
	c.Summary = append(c.Summary, "auto: "+c.Auto.Encoder+": "+c.Auto.Reason)
	c.TookMS = time.Since(began).Milliseconds()
	return c
}

// build reads ffmpeg's -encoders, -hwaccels and -filters.
func (p Prober) build(ctx context.Context, problem func(error)) Build {
	b := Build{Encoders: []string{}, HWAccels: []string{}, Filters: []string{}}
	wantEnc := map[string]bool{"libx264": true}
	for _, be := range backends {
		wantEnc[be.name] = true
	}
	wantFilter := map[string]bool{"hwdownload": true}
	for _, be := range backends {
		for _, f := range be.filters {
			for _, alt := range strings.Split(f, "|") {
				wantFilter[alt] = true
			}
		}
	}
	if out, err := p.list(ctx, "-encoders"); err != nil {
		problem(err)
	} else {
		for _, n := range listedNames(out) {
			if wantEnc[n] {
				b.Encoders = append(b.Encoders, n)
			}
		}
	}
	if out, err := p.list(ctx, "-hwaccels"); err != nil {
		problem(err)
	} else {
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasSuffix(l, ":") {
				b.HWAccels = append(b.HWAccels, l)
			}
		}
	}
	if out, err := p.list(ctx, "-filters"); err != nil {
		problem(err)
	} else {
		for _, n := range listedNames(out) {
			if wantFilter[n] {
				b.Filters = append(b.Filters, n)
			}
		}
	}
	return b
}

func (p Prober) list(ctx context.Context, what string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	out, stderr, err := run(ctx, p.FFmpeg, nil, "-hide_banner", what)
	if err != nil {
		line, _, _ := reason(stderr)
		return nil, fmt.Errorf("ffmpeg %s: %w: %s", what, err, line)
	}
	return out, nil
}

// listing matches a line of -encoders (" V....D h264_nvenc  NVIDIA ...") or
// -filters (" ... scale_cuda  V->V  GPU accelerated ..."); legend lines have "="
// where the name goes.
var listing = regexp.MustCompile(`^\s*[A-Z.|]{3,6}\s+([A-Za-z0-9_]+)\s`)

func listedNames(out []byte) []string {
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := listing.FindStringSubmatch(sc.Text()); m != nil {
			names = append(names, m[1])
		}
	}
	return names
}

func (p Prober) nvidiaSMI(ctx context.Context) ([]smiGPU, error) {
	path, err := exec.LookPath(p.NvidiaSMI)
	if err != nil {
		return nil, exec.ErrNotFound
	}
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	out, stderr, err := run(ctx, path, nil, smiQuery...)
	if err != nil {
		// "NVIDIA-SMI has failed because it couldn't communicate with the
		// NVIDIA driver" comes on stdout.
		msg := strings.TrimSpace(firstLine(out))
		if len(stderr) > 0 {
			msg = stderr[len(stderr)-1]
		}
		return nil, fmt.Errorf("nvidia-smi: %w: %s", err, msg)
	}
	return parseSMI(out)
}

// probeDevice finds d's driver and tries every backend that fits its vendor.
func (p Prober) probeDevice(ctx context.Context, d *Device, b Build, tmp string) {
	if d.Vendor != VendorNVIDIA && d.RenderNode != "" {
		p.vaapiDriver(ctx, d)
	}
	for _, be := range backends {
		if !slices.Contains(be.vendors, d.Vendor) {
			continue
		}
		r := EncoderResult{Backend: be.encoder.Name(), Encoder: be.name}
		switch {
		case !slices.Contains(b.Encoders, be.name):
			r.Error, r.Kind = "this ffmpeg has no "+be.name+" encoder", KindNotInBuild
		case missing(be, b) != "":
			r.Error, r.Kind = "this ffmpeg lacks "+missing(be, b), KindNotInBuild
		case be.needVAAP && d.DriverError != "":
			r.Error, r.Kind = d.DriverError, KindDriver
		case be.frames == FramesCUDA && d.CUDAIndex == nil:
			r.Error, r.Kind = "nvidia-smi does not list this GPU: the NVIDIA driver does not drive it, or this container cannot see it", KindNoDevice
		case be.frames != FramesCUDA && be.frames != "" && d.RenderNode == "":
			r.Error, r.Kind = "no DRM render node", KindNoDevice
		case tmp == "":
			r.Error, r.Kind = "no folder for the trial encode", KindOther
		default:
			hw := Hardware{}
			if be.frames != "" {
				hw = d.hardware(be.frames)
				hw.Scaler = cudaScaler(b)
			}
			rung := trialRung(be.encoder.Name(), "trial", p.Width, p.Height)
			t := p.trial(ctx, hw, []ladder.PlannedVideo{rung}, lavfiInput(p.Width, p.Height), tmp)
			r.Trial, r.Working, r.Error, r.Kind = &t, t.OK, t.Error, t.Kind
			switch {
			case t.OK:
				r.Sessions, r.SessionsAtLeast, r.SessionsError = p.sessions(ctx, hw, be.encoder.Name(), tmp)
			case t.Kind == KindSessionLimit:
				// The encoder is there but every session is taken (by our
				// own jobs during a re-probe, or by another program): it
				// works, with none free now.
				r.Working, r.SessionsError = true, t.Error
			}
		}
		d.Encoders = append(d.Encoders, r)
	}
	p.decodeTrial(ctx, d, b, tmp)
	summarize(d)
}

// missing returns the first hwaccel or filter be needs that b lacks, or "".
func missing(be backendInfo, b Build) string {
	if be.hwaccel != "" && !slices.Contains(b.HWAccels, be.hwaccel) {
		return "the " + be.hwaccel + " hwaccel"
	}
	for _, f := range be.filters {
		alts := strings.Split(f, "|")
		if !slices.ContainsFunc(alts, func(a string) bool { return slices.Contains(b.Filters, a) }) {
			return "the " + strings.Join(alts, " or ") + " filter"
		}
	}
	return ""
}

func cudaScaler(b Build) string {
	if !slices.Contains(b.Filters, "scale_cuda") && slices.Contains(b.Filters, "scale_npp") {
		return "scale_npp"
	}
	return ""
}

// vaapiDriver asks ffmpeg to open the device's VAAPI connection and reads the
// driver it names ("VAAPI driver: Intel iHD driver for ..."), or why it failed.
func (p Prober) vaapiDriver(ctx context.Context, d *Device) {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	// Without an output ffmpeg stops right after opening the device; its exit
	// status says nothing, the lines do.
	_, stderr, _ := run(ctx, p.FFmpeg, nil, "-hide_banner", "-v", "verbose", "-init_hw_device", "vaapi=va:"+d.RenderNode)
	for _, l := range stderr {
		if _, after, ok := strings.Cut(l, "VAAPI driver: "); ok {
			d.DriverLine = strings.TrimSpace(l)
			d.Driver = driverName(strings.TrimSuffix(strings.TrimSpace(after), "."))
			return
		}
	}
	line, _, ok := reason(stderr)
	if !ok && line == "" {
		line = "ffmpeg named no VAAPI driver"
	}
	d.DriverLine, d.DriverError = line, line
}

// driverName shortens a VAAPI vendor string to the driver's common name.
func driverName(vendor string) string {
	for _, n := range []struct{ in, out string }{
		{"Intel iHD driver", "Intel iHD"},
		{"Intel i965 driver", "Intel i965"},
		{"Mesa Gallium driver", "Mesa Gallium"},
	} {
		if strings.Contains(vendor, n.in) {
			return n.out
		}
	}
	return vendor
}

// decodeTrial tries decoding an H.264 clip on the device and scaling there, for
// an x264 rung and for the device's working encoder that reads the same frames.
// Jobs decode on the GPU only what this proved.
func (p Prober) decodeTrial(ctx context.Context, d *Device, b Build, tmp string) {
	frames := ""
	switch {
	case d.Vendor == VendorNVIDIA && d.CUDAIndex != nil:
		frames = FramesCUDA
	case d.Vendor != VendorNVIDIA && d.RenderNode != "" && d.DriverError == "":
		frames = FramesVAAPI
	}
	if frames == "" || tmp == "" || ctx.Err() != nil || !slices.Contains(b.HWAccels, frames) ||
		!slices.Contains(b.Encoders, "libx264") || !slices.Contains(b.Filters, "hwdownload") || !slices.Contains(b.Filters, "hwupload") {
		return
	}
	if frames == FramesCUDA && !slices.Contains(b.Filters, "scale_cuda") && !slices.Contains(b.Filters, "scale_npp") {
		return
	}
	if frames == FramesVAAPI && !slices.Contains(b.Filters, "scale_vaapi") {
		return
	}
	clip, err := p.clip(ctx, tmp)
	if err != nil {
		d.Decode = &Trial{Error: err.Error(), Kind: KindOther}
		return
	}
	hw := d.hardware(frames)
	hw.Decode = true
	hw.Scaler = cudaScaler(b)
	var rungs []ladder.PlannedVideo
	for _, r := range d.Encoders {
		if r.Working && backendByName(r.Backend).frames == frames {
			rungs = append(rungs, trialRung(r.Backend, "trial", p.Width, p.Height))
			break
		}
	}
	rungs = append(rungs, trialRung(BackendX264, "trial_x264", p.Width/4*2, p.Height/4*2))
	t := p.trial(ctx, hw, rungs, []string{"-i", clip}, tmp)
	d.Decode = &t
}

// clip writes, once, a one-second H.264 clip at the trial size with libx264.
func (p Prober) clip(ctx context.Context, tmp string) (string, error) {
	path := filepath.Join(tmp, "clip.mp4")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	_, stderr, err := run(ctx, p.FFmpeg, nil, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", testSource(p.Width, p.Height),
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "15", path)
	if err != nil {
		line, _, _ := reason(stderr)
		return "", fmt.Errorf("make the decode trial clip: %w: %s", err, line)
	}
	return path, nil
}

func testSource(w, h int) string {
	return fmt.Sprintf("testsrc2=size=%dx%d:rate=%d:duration=%s", w, h, trialFPS, strconv.FormatFloat(trialSeconds, 'f', -1, 64))
}

func lavfiInput(w, h int) []string { return []string{"-f", "lavfi", "-i", testSource(w, h)} }

func trialRung(backend, name string, w, h int) ladder.PlannedVideo {
	// A ladder-like bitrate for the size: about 0.1 bit per pixel per frame.
	br := int64(w*h*trialFPS/10/1000) * 1000
	return ladder.PlannedVideo{Name: name, Width: w, Height: h, Bitrate: br, MaxRate: br, BufSize: 2 * br, Profile: "main", Encoder: backend}
}

func trialGOP() int { return int(math.Round(trialFPS * trialSegment)) }

// trialArgs is the argv of a trial: the job's own device options, filter graph
// and encoder arguments, with each rung written as framecrc to a file in tmp.
func trialArgs(hw Hardware, rungs []ladder.PlannedVideo, input []string, outs []string) ([]string, error) {
	graph, err := FilterGraph(strconv.Itoa(trialFPS), rungs, hw)
	if err != nil {
		return nil, err
	}
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "warning"}
	args = append(args, hw.InputArgs()...)
	args = append(args, input...)
	args = append(args, "-filter_complex", graph)
	for i, r := range rungs {
		enc, err := Resolve(r.Encoder)
		if err != nil {
			return nil, err
		}
		v, err := enc.VideoArgs(r, trialPreset, trialGOP(), trialSegment)
		if err != nil {
			return nil, err
		}
		args = append(args, "-map", "[v"+strconv.Itoa(i)+"]")
		args = append(args, v...)
		args = append(args, "-an", "-f", outs[i*2], "-y", outs[i*2+1])
	}
	return args, nil
}

// trial runs one trial encode and checks that frames came out of every output
// and that keyframes landed on the segment boundaries asked for.
func (p Prober) trial(ctx context.Context, hw Hardware, rungs []ladder.PlannedVideo, input []string, tmp string) Trial {
	var outs, files []string
	for i := range rungs {
		f := filepath.Join(tmp, fmt.Sprintf("trial-%d.crc", i))
		_ = os.Remove(f)
		outs = append(outs, "framecrc", f)
		files = append(files, f)
	}
	args, err := trialArgs(hw, rungs, input, outs)
	if err != nil {
		return Trial{Error: err.Error(), Kind: KindOther}
	}
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	began := time.Now()
	_, stderr, err := run(ctx, p.FFmpeg, hw.Env(), args...)
	t := Trial{Args: append([]string{p.FFmpeg}, args...), TookMS: time.Since(began).Milliseconds()}
	if ctx.Err() != nil {
		t.Error, t.Kind = fmt.Sprintf("trial encode did not finish in %s", p.Timeout), KindTimeout
		return t
	}
	if err != nil {
		line, kind, _ := reason(stderr)
		if line == "" {
			line = err.Error()
		}
		t.Error, t.Kind = line, kind
		return t
	}
	want := int(math.Round(trialFPS * trialSeconds))
	gop := trialGOP()
	for i, f := range files {
		frames, keys, err := readFrameCRC(f)
		if i == 0 {
			t.Frames, t.Keyframes = frames, keys
		}
		switch {
		case err != nil:
			t.Error, t.Kind = err.Error(), KindNoFrames
		case frames < want:
			t.Error, t.Kind = fmt.Sprintf("%s: %d frames came out of %d", rungs[i].Encoder, frames, want), KindNoFrames
		default:
			var missed []string
			for k := 0; k < want; k += gop {
				if !slices.Contains(keys, k) {
					missed = append(missed, strconv.Itoa(k))
				}
			}
			if len(missed) > 0 {
				t.Error, t.Kind = fmt.Sprintf("%s ignored forced keyframes: no keyframe at frame %s (keyframes at %s)",
					rungs[i].Encoder, strings.Join(missed, ", "), joinInts(keys)), KindKeyframes
			}
		}
		if t.Error != "" {
			return t
		}
	}
	t.OK = true
	return t
}

// sessions finds how many encoder sessions of backend the device opens at once:
// one ffmpeg with n outputs of the backend (a job with n hardware rungs does the
// same), n doubling from 2 until one fails or MaxSessions, then halving the gap.
func (p Prober) sessions(ctx context.Context, hw Hardware, backend string, tmp string) (n int, atLeast bool, failLine string) {
	try := func(n int) (bool, string) {
		rungs := make([]ladder.PlannedVideo, n)
		outs := make([]string, 0, 2*n)
		for i := range rungs {
			rungs[i] = trialRung(backend, "s"+strconv.Itoa(i), p.Width, p.Height)
			outs = append(outs, "null", "-")
		}
		args, err := trialArgs(hw, rungs, lavfiInput(p.Width, p.Height), outs)
		if err != nil {
			return false, err.Error()
		}
		ctx, cancel := context.WithTimeout(ctx, p.Timeout)
		defer cancel()
		_, stderr, err := run(ctx, p.FFmpeg, hw.Env(), args...)
		if err == nil {
			return true, ""
		}
		line, _, _ := reason(stderr)
		if ctx.Err() != nil {
			line = fmt.Sprintf("%d sessions did not finish in %s", n, p.Timeout)
		}
		return false, line
	}
	good, bad := 1, 0
	for n := 2; ; n *= 2 {
		n = min(n, p.MaxSessions)
		if n <= good {
			return good, true, ""
		}
		ok, line := try(n)
		if !ok {
			bad, failLine = n, line
			break
		}
		good = n
		if n == p.MaxSessions {
			return good, true, ""
		}
	}
	for bad-good > 1 && ctx.Err() == nil {
		mid := (good + bad) / 2
		if ok, line := try(mid); ok {
			good = mid
		} else {
			bad, failLine = mid, line
		}
	}
	return good, false, failLine
}

// readFrameCRC reads a framecrc file: per packet "stream, dts, pts, duration,
// size, crc" and ", F=0x0" when the packet is not a keyframe. It returns the
// number of video packets and the frame numbers of the keyframes.
func readFrameCRC(path string) (frames int, keys []int, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, fmt.Errorf("no output: %w", err)
	}
	tbNum, tbDen := 1, trialFPS
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "#tb 0: "); ok {
			n, d, ok := strings.Cut(strings.TrimSpace(rest), "/")
			a, err1 := strconv.Atoi(n)
			b, err2 := strconv.Atoi(d)
			if !ok || err1 != nil || err2 != nil || a <= 0 || b <= 0 {
				return 0, nil, fmt.Errorf("framecrc: bad time base %q", line)
			}
			tbNum, tbDen = a, b
			continue
		}
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 6 || strings.TrimSpace(f[0]) != "0" {
			continue
		}
		pts, err := strconv.ParseInt(strings.TrimSpace(f[2]), 10, 64)
		if err != nil {
			return 0, nil, fmt.Errorf("framecrc: bad pts in %q", line)
		}
		frames++
		key := true
		for _, extra := range f[6:] {
			if strings.HasPrefix(strings.TrimSpace(extra), "F=") {
				key = false
			}
		}
		if key {
			keys = append(keys, int(math.Round(float64(pts)*float64(tbNum)/float64(tbDen)*trialFPS)))
		}
	}
	sort.Ints(keys)
	return frames, keys, sc.Err()
}

// summarize sets d's Status and Summary.
func summarize(d *Device) {
	var works, fails []string
	for _, r := range d.Encoders {
		if r.Working {
			s := r.Backend + " works"
			switch {
			case r.SessionsAtLeast:
				s += fmt.Sprintf(", at least %d sessions at once", r.Sessions)
			case r.Sessions > 0:
				s += fmt.Sprintf(", %d sessions at once", r.Sessions)
			default:
				s += ", no session free while probing: " + r.SessionsError
			}
			works = append(works, s)
		} else {
			fails = append(fails, r.Encoder+": "+r.Error)
		}
	}
	var b strings.Builder
	b.WriteString(describe(d))
	b.WriteString(": ")
	if len(works) > 0 {
		d.Status = StatusEncoder
		b.WriteString(strings.Join(works, "; "))
		if len(fails) > 0 {
			b.WriteString("; not working: " + strings.Join(fails, "; "))
		}
	} else {
		d.Status = StatusNoEncoder
		b.WriteString("GPU present, no encoder")
		if len(fails) > 0 {
			b.WriteString(": " + strings.Join(fails, "; "))
		}
		if d.Vendor == VendorNVIDIA && noNVENC.MatchString(d.Name) {
			b.WriteString(" (this model has no NVENC)")
		}
	}
	if d.Decode != nil {
		if d.Decode.OK {
			b.WriteString("; decoding and scaling on the GPU work")
		} else {
			b.WriteString("; decoding on the GPU failed: " + d.Decode.Error)
		}
	}
	d.Summary = b.String()
}

// describe names a device for people: "NVIDIA H100 80GB HBM3 (0000:19:00.0,
// renderD128)" or "intel 0x8086:0x46a6 (renderD128, Intel iHD)".
func describe(d *Device) string {
	name := d.Name
	if name == "" {
		name = d.Vendor + " " + d.VendorID + ":" + d.DeviceID
	}
	var parts []string
	for _, s := range []string{d.PCI, d.ID, d.Driver} {
		if s != "" && !slices.Contains(parts, s) {
			parts = append(parts, s)
		}
	}
	return name + " (" + strings.Join(parts, ", ") + ")"
}

// auto picks the best working backend: nvenc, then qsv, vaapi and amf, on the
// first device where it works; else x264, using a GPU that decodes and scales
// when there is one.
func auto(devs []Device) Choice {
	for _, be := range backends {
		for _, d := range devs {
			if r := d.encoder(be.encoder.Name()); r != nil && r.Working {
				return Choice{Encoder: r.Backend, Device: d.ID, Reason: describe(&d) + ": " + r.Encoder + " passed its trial encode"}
			}
		}
	}
	if len(devs) == 0 {
		return Choice{Encoder: BackendX264, Reason: "no GPU found"}
	}
	for _, d := range devs {
		if d.Decode != nil && d.Decode.OK {
			return Choice{Encoder: BackendX264, DecodeOn: d.ID,
				Reason: "no GPU encoder works; " + describe(&d) + " decodes and scales, x264 encodes"}
		}
	}
	return Choice{Encoder: BackendX264, Reason: "no GPU encoder works (see devices)"}
}

func joinInts(v []int) string {
	if len(v) == 0 {
		return "none"
	}
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

func firstLine(b []byte) string {
	l, _, _ := bytes.Cut(b, []byte("\n"))
	return string(l)
}

// maxStderr caps how much of a child's stderr is kept.
const maxStderr = 64 << 10

// run runs a short command and returns its stdout and its stderr lines. It starts it
// as jobs do (internal/supervise): a daemon killed mid-probe leaves no ffmpeg behind.
func run(ctx context.Context, name string, env []string, args ...string) ([]byte, []string, error) {
	var stdout bytes.Buffer
	stderr := &capped{max: maxStderr}
	err := supervise.Run(ctx, supervise.Spec{Path: name, Args: args, Env: env, Stdout: &stdout, Stderr: stderr, Grace: 5 * time.Second}).Err
	var lines []string
	for _, l := range strings.FieldsFunc(string(stderr.buf), func(r rune) bool { return r == '\n' || r == '\r' }) {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return stdout.Bytes(), lines, err
}

// capped keeps the first max bytes written to it.
type capped struct {
	buf []byte
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
