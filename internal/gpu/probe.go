package gpu

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/transcoderd/transcoderd/internal/encoder"
	"github.com/transcoderd/transcoderd/internal/ladder"
)

// Probe defaults.
const (
	defaultTrialWidth   = 1280
	defaultTrialHeight  = 720
	defaultTrialTimeout = 30 * time.Second
	defaultMaxSessions  = 16
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
		p.Width, p.Height = defaultTrialWidth, defaultTrialHeight
	}
	if p.Timeout <= 0 {
		p.Timeout = defaultTrialTimeout
	}
	if p.MaxSessions <= 0 {
		p.MaxSessions = defaultMaxSessions
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
	devs, smi := p.devices(ctx, problem)
	c.NvidiaSMI = smi

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

// devices lists the GPUs: the render nodes in sysfs, with what nvidia-smi
// knows about the NVIDIA ones. smi says how nvidia-smi answered: "ok", "not
// found", or why it failed.
func (p Prober) devices(ctx context.Context, problem func(error)) (devs []Device, smi string) {
	devs, err := scanDRM(p.Root)
	if err != nil {
		problem(fmt.Errorf("read %s: %w", filepath.Join(p.Root, "sys/class/drm"), err))
	}
	gpus, err := p.nvidiaSMI(ctx)
	switch {
	case errors.Is(err, exec.ErrNotFound):
		smi = "not found"
	case err != nil:
		smi = err.Error()
	default:
		return mergeSMI(devs, gpus), "ok"
	}
	pciOrdinals(devs)
	return devs, smi
}

// build reads ffmpeg's -encoders, -hwaccels and -filters.
func (p Prober) build(ctx context.Context, problem func(error)) Build {
	b := Build{Encoders: []string{}, HWAccels: []string{}, Filters: []string{}}
	wantEnc, wantFilter := map[string]bool{}, map[string]bool{"hwdownload": true}
	for _, be := range encoder.Backends() {
		wantEnc[be.FFmpeg] = true
		for _, f := range be.Filters() {
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
	backends := encoder.OnVendor(d.Vendor)
	if d.RenderNode != "" && slices.ContainsFunc(backends, encoder.Backend.OnVAAPI) {
		p.vaapiDriver(ctx, d)
	}
	for _, be := range backends {
		d.Encoders = append(d.Encoders, p.tryBackend(ctx, d, be, b, tmp))
	}
	p.decodeTrial(ctx, d, b, tmp)
	summarize(d)
}

// tryBackend checks that build b and device d have what backend be needs, then
// runs its trial encode and, when that works, counts its sessions.
func (p Prober) tryBackend(ctx context.Context, d *Device, be encoder.Backend, b Build, tmp string) EncoderResult {
	r := EncoderResult{Backend: be.Name, Encoder: be.FFmpeg}
	lacks := missing(be, b)
	why, kind := unreachable(d, be)
	switch {
	case !slices.Contains(b.Encoders, be.FFmpeg):
		r.Error, r.Kind = "this ffmpeg has no "+be.FFmpeg+" encoder", kindNotInBuild
	case lacks != "":
		r.Error, r.Kind = "this ffmpeg lacks "+lacks, kindNotInBuild
	case why != "":
		r.Error, r.Kind = why, kind
	case tmp == "":
		r.Error, r.Kind = "no folder for the trial encode", kindOther
	}
	if r.Error != "" {
		return r
	}
	hw := encoder.Hardware{}
	if be.Frames != "" {
		hw = d.hardware(be.Frames)
		hw.Scaler = scaler(b, be.Frames)
	}
	rung := trialRung(be.Name, "trial", p.Width, p.Height)
	t := p.trial(ctx, hw, []ladder.PlannedVideo{rung}, lavfiInput(p.Width, p.Height), tmp)
	r.Trial, r.Working, r.Error, r.Kind = &t, t.OK, t.Error, t.Kind
	switch {
	case t.OK:
		r.CPUPerMpx = t.cpuPerMpx(rung)
		r.Sessions, r.SessionsAtLeast, r.SessionsError = p.sessions(ctx, hw, be.Name, tmp)
	case t.Kind == kindSessionLimit:
		// The encoder is there but every session is taken (by our own jobs
		// during a re-probe, or by another program): it works, with none
		// free now.
		r.Working, r.SessionsError = true, t.Error
	}
	return r
}

// missing returns the first thing be's frames need that build b lacks: their
// hwaccel or a filter (one of "a|b"); "" when b has them all.
func missing(be encoder.Backend, b Build) string {
	if be.Frames != "" && !slices.Contains(b.HWAccels, be.Frames) {
		return "the " + be.Frames + " hwaccel"
	}
	for _, f := range be.Filters() {
		alts := strings.Split(f, "|")
		if !slices.ContainsFunc(alts, func(a string) bool { return slices.Contains(b.Filters, a) }) {
			return "the " + strings.Join(alts, " or ") + " filter"
		}
	}
	return ""
}

// unreachable says why device d cannot run backend be's frames, with the
// failure kind; "" when nothing stands in the way.
func unreachable(d *Device, be encoder.Backend) (why, kind string) {
	switch {
	case be.OnVAAPI() && d.DriverError != "":
		return d.DriverError, kindDriver
	case be.Frames == encoder.FramesCUDA && d.CUDAIndex == nil:
		return "nvidia-smi does not list this GPU: the NVIDIA driver does not drive it, or this container cannot see it", kindNoDevice
	case be.Frames != encoder.FramesCUDA && be.Frames != "" && d.RenderNode == "":
		return "no DRM render node", kindNoDevice
	}
	return "", ""
}

// scaler is the scaler a job on frames of type frames uses with build b: ""
// (the frame type's default) when b has it or no other, else the first other
// one b has (scale_npp where a build lacks scale_cuda).
func scaler(b Build, frames string) string {
	be, ok := readerOf(frames)
	if !ok {
		return ""
	}
	scalers := be.Scalers()
	if len(scalers) == 0 || slices.Contains(b.Filters, scalers[0]) {
		return ""
	}
	for _, s := range scalers[1:] {
		if slices.Contains(b.Filters, s) {
			return s
		}
	}
	return ""
}

// readerOf returns the backend that reads hardware frames of type frames.
func readerOf(frames string) (encoder.Backend, bool) {
	for _, be := range encoder.Backends() {
		if frames != "" && be.Frames == frames {
			return be, true
		}
	}
	return encoder.Backend{}, false
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

func firstLine(b []byte) string {
	l, _, _ := bytes.Cut(b, []byte("\n"))
	return string(l)
}
