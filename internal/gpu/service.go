package gpu

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/ladder"
)

// Errors a job fails with when its ladder says fallback: none.
var (
	// ErrNoEncoder: the ladder asks for a hardware encoder that does not work here.
	ErrNoEncoder = errors.New("no working hardware encoder")
	// ErrNoSession: the device has no encoder session left for a rung.
	ErrNoSession = errors.New("no hardware encoder session left")
	// ErrHardwareFailed: the hardware encoder failed to open or died mid-stream.
	ErrHardwareFailed = errors.New("hardware encoder failed")
)

// Service keeps the last probe result and the encoder sessions that jobs hold, and
// decides, per job, which rungs run on which backend. It is safe for concurrent
// use. One Service serves the whole daemon.
type Service struct {
	prober Prober
	log    zerolog.Logger

	probing sync.Mutex // one probe at a time

	mu     sync.Mutex
	caps   Capabilities
	probed bool
	pools  map[string]*pool  // by pool key
	held   map[string][]hold // job id -> its sessions
}

// pool is a set of encoder sessions that run out together: one backend on one
// device, or every NVIDIA GPU whose NVENC sessions are capped by the driver (the
// consumer cap is system-wide).
type pool struct {
	key      string
	device   string // Device.ID, or "nvidia" for the shared NVENC pool
	backend  string
	capacity int // -1: not limited
	learned  string
}

type hold struct {
	pool string
	rung string
}

// NewService returns a Service that probes with p. It has probed nothing yet:
// call Probe (the daemon does at start) or SetCapabilities.
func NewService(p Prober, log zerolog.Logger) *Service {
	return &Service{prober: p, log: log, pools: map[string]*pool{}, held: map[string][]hold{}}
}

// Probe runs the probe, keeps its result, rebuilds the session budget from it
// and logs it as one event. Concurrent calls wait for the probe in flight and
// then run their own.
func (s *Service) Probe(ctx context.Context) Capabilities {
	s.probing.Lock()
	defer s.probing.Unlock()
	c := s.prober.Probe(ctx)
	s.SetCapabilities(c)
	ev := s.log.Info()
	if len(c.Problems) > 0 {
		ev = s.log.Warn().Strs("problems", c.Problems)
	}
	ev.Str("auto", c.Auto.Encoder).Str("auto_device", c.Auto.Device).Int("devices", len(c.Devices)).
		Strs("summary", c.Summary).Int64("took_ms", c.TookMS).Msg("hardware probe")
	return c
}

// SetCapabilities installs a probe result, as Probe does. The session capacity
// of each pool is what the probe measured plus the sessions this daemon's jobs
// held while it measured.
func (s *Service) SetCapabilities(c Capabilities) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.caps, s.probed = c, true
	pools := map[string]*pool{}
	for _, d := range c.Devices {
		for _, r := range d.Encoders {
			if !r.Working {
				continue
			}
			key := poolKey(&d, &r)
			capacity := r.Sessions
			if r.SessionsAtLeast {
				capacity = -1
			}
			if p, ok := pools[key]; ok {
				// The shared NVENC pool: every capped GPU measured the same
				// system-wide limit; keep the largest reading.
				if capacity < 0 || (p.capacity >= 0 && capacity > p.capacity) {
					p.capacity = capacity
				}
				continue
			}
			dev := d.ID
			if key == sharedNVENC {
				dev = "nvidia"
			}
			pools[key] = &pool{key: key, device: dev, backend: r.Backend, capacity: capacity}
		}
	}
	for _, p := range pools {
		if p.capacity >= 0 {
			p.capacity += s.usedLocked(p.key)
		}
	}
	s.pools = pools
}

const sharedNVENC = "nvenc"

func poolKey(d *Device, r *EncoderResult) string {
	if r.Backend == BackendNVENC && d.Vendor == VendorNVIDIA && !r.SessionsAtLeast {
		return sharedNVENC
	}
	return d.ID + "/" + r.Backend
}

// Capabilities returns the last probe result; ok is false before the first.
func (s *Service) Capabilities() (c Capabilities, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.caps, s.probed
}

// PoolView is one session pool as GET /v1/capabilities shows it.
type PoolView struct {
	Pool     string   `json:"pool"`
	Device   string   `json:"device"`
	Backend  string   `json:"backend"`
	Capacity int      `json:"capacity"` // -1: not limited
	InUse    int      `json:"in_use"`
	Jobs     []string `json:"jobs,omitempty"`
	// Learned says why the capacity is lower than the probe measured: a job
	// hit the limit at runtime. The next probe measures again.
	Learned string `json:"learned,omitempty"`
}

// Sessions returns every session pool with its use, sorted by name.
func (s *Service) Sessions() []PoolView {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []PoolView{}
	for _, p := range s.pools {
		v := PoolView{Pool: p.key, Device: p.device, Backend: p.backend, Capacity: p.capacity, InUse: s.usedLocked(p.key), Learned: p.learned}
		for id, hs := range s.held {
			if slices.ContainsFunc(hs, func(h hold) bool { return h.pool == p.key }) {
				v.Jobs = append(v.Jobs, id)
			}
		}
		sort.Strings(v.Jobs)
		out = append(out, v)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Pool < out[b].Pool })
	return out
}

func (s *Service) usedLocked(key string) int {
	n := 0
	for _, hs := range s.held {
		for _, h := range hs {
			if h.pool == key {
				n++
			}
		}
	}
	return n
}

func (s *Service) freeLocked(key string) int {
	p, ok := s.pools[key]
	if !ok {
		return 0
	}
	if p.capacity < 0 {
		return int(^uint(0) >> 1)
	}
	return p.capacity - s.usedLocked(key)
}

// Admission is how one job's plan runs on this machine.
type Admission struct {
	// Plan is the plan with every PlannedVideo.Encoder resolved to the backend
	// that encodes it: x264, nvenc, qsv, vaapi or amf.
	Plan ladder.Plan `json:"plan"`
	// HW is the GPU the job uses; pass it as ffmpeg.Job.HW. Zero for software.
	HW Hardware `json:"hardware"`
	// Device is the Device.ID of that GPU.
	Device string `json:"device,omitempty"`
	// Moved lists the rungs on x264 although their ladder asked for hardware,
	// with the reason: a job never falls back silently.
	Moved []Move `json:"moved,omitempty"`
	// Notes says how auto resolved and whether the GPU decodes.
	Notes []string `json:"notes,omitempty"`
}

// Move is one rung put on software instead of the hardware its ladder asked for.
type Move struct {
	Rung   string `json:"rung"`
	Wanted string `json:"wanted"`         // what the ladder asked: auto, nvenc, vce...
	From   string `json:"from,omitempty"` // the backend it ran on, for a fallback after a failure
	To     string `json:"to"`             // x264
	Reason string `json:"reason"`         // with ffmpeg's own line where there is one
}

// Env is the environment ffmpeg needs on top of the daemon's for this admission.
func (a Admission) Env() []string { return a.HW.Env() }

// HardwareRungs returns the names of the rungs a hardware encoder encodes.
func (a Admission) HardwareRungs() []string {
	var names []string
	for _, v := range a.Plan.Video {
		if IsHardware(v.Encoder) {
			names = append(names, v.Name)
		}
	}
	return names
}

// wanted returns the encoder the ladder asks for rung name: the rung's own, else
// the ladder's, else auto.
func wanted(l *ladder.Ladder, name string) string {
	for _, r := range l.Video.Renditions {
		if r.Name == name && r.Encoder != "" {
			return r.Encoder
		}
	}
	if l.Encoder != "" {
		return l.Encoder
	}
	return "auto"
}

// Admit decides how job id encodes plan p of ladder l and reserves one encoder
// session per hardware rung. Call it once the plan is known, before the first
// ffmpeg run, and Release when the job ends. A rung whose hardware does not work
// here, or whose device has no session left, goes to x264 and is listed in
// Moved when l.Fallback is "x264"; with "none" Admit reserves nothing and fails
// with ErrNoEncoder or ErrNoSession. src.VideoCodec decides whether the GPU also
// decodes (only codecs its trial proved). Admitting a job again releases what it
// held first.
func (s *Service) Admit(id string, l *ladder.Ladder, p ladder.Plan, src ladder.SourceInfo) (Admission, error) {
	if l == nil {
		return Admission{}, errors.New("admit: no ladder")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held, id)
	a := Admission{Plan: p}
	a.Plan.Video = slices.Clone(p.Video)
	if len(a.Plan.Video) == 0 {
		return a, nil
	}
	caps := s.caps

	var (
		dev      *Device
		frames   string
		holds    []hold
		errs     []error
		wantsGPU bool
	)
	for i := range a.Plan.Video {
		v := &a.Plan.Video[i]
		want := wanted(l, v.Name)
		v.Encoder = BackendX264
		if want == BackendX264 {
			continue
		}
		wantsGPU = true
		candidates := []string{want}
		switch want {
		case "auto":
			if !IsHardware(caps.Auto.Encoder) {
				note := "auto resolved to x264: " + caps.Auto.Reason
				if !s.probed {
					note = "auto resolved to x264: the hardware has not been probed"
				}
				if !slices.Contains(a.Notes, note) {
					a.Notes = append(a.Notes, note)
				}
				continue
			}
			candidates = []string{caps.Auto.Encoder}
		case "vce":
			candidates = []string{BackendVAAPI, BackendAMF}
		}

		var why string
		if dev == nil {
			dev, why = s.pickLocked(caps.Devices, want, candidates)
		}
		backend := ""
		if dev != nil {
			var r *EncoderResult
			backend, r, why = usable(dev, want, candidates, frames)
			if r != nil {
				key := poolKey(dev, r)
				if local := countPool(holds, key); s.freeLocked(key)-local <= 0 {
					why = fmt.Sprintf("no %s session left on %s: %s", r.Backend, describe(dev), s.usageLocked(key, local))
					backend = ""
				} else {
					holds = append(holds, hold{pool: key, rung: v.Name})
					if frames == "" {
						frames = backendByName(backend).frames
					}
				}
			}
		}
		if backend == "" {
			if why == "" {
				why = "no working " + strings.Join(candidates, " or ")
			}
			a.Moved = append(a.Moved, Move{Rung: v.Name, Wanted: want, To: BackendX264, Reason: why})
			if l.Fallback == "none" {
				sentinel := ErrNoEncoder
				if strings.HasPrefix(why, "no ") && strings.Contains(why, " session left") {
					sentinel = ErrNoSession
				}
				errs = append(errs, fmt.Errorf("rung %q wants %s and ladder %q says fallback: none: %s: %w", v.Name, want, l.Name, why, sentinel))
			}
			continue
		}
		v.Encoder = backend
	}
	if err := errors.Join(errs...); err != nil {
		return Admission{}, err
	}
	if dev != nil && len(holds) > 0 {
		a.Device = dev.ID
		if frames != "" {
			a.HW = dev.hardware(frames)
			a.HW.Scaler = cudaScaler(caps.FFmpeg)
			a.HW.Decode = decodes(dev, frames, src.VideoCodec)
		}
	} else if wantsGPU {
		// No rung encodes on a GPU, but one that decodes and scales takes that
		// work off the CPU for the x264 rungs.
		for i := range caps.Devices {
			d := &caps.Devices[i]
			f := decodeFrames(d)
			if f != "" && decodes(d, f, src.VideoCodec) {
				a.Device, a.HW = d.ID, d.hardware(f)
				a.HW.Scaler, a.HW.Decode = cudaScaler(caps.FFmpeg), true
				a.Notes = append(a.Notes, "x264 encodes; "+describe(d)+" decodes and scales")
				break
			}
		}
	}
	if a.HW.Decode && len(holds) > 0 {
		a.Notes = append(a.Notes, describe(dev)+" decodes, scales and encodes")
	}
	if len(holds) > 0 {
		s.held[id] = holds
	}
	return a, nil
}

// pickLocked chooses the device for a job from the first rung that wants
// hardware: among the devices where a candidate backend works, the one with the
// most free sessions, the first on a tie. why says why none fits.
func (s *Service) pickLocked(devs []Device, want string, candidates []string) (*Device, string) {
	var best *Device
	bestFree := -1
	var reasons []string
	for i := range devs {
		d := &devs[i]
		if want == "vce" && d.Vendor != VendorAMD {
			continue
		}
		backend, r, why := usable(d, want, candidates, "")
		if backend == "" {
			if why != "" {
				reasons = append(reasons, why)
			}
			continue
		}
		free := s.freeLocked(poolKey(d, r))
		if free > bestFree {
			best, bestFree = d, free
		}
	}
	if best != nil {
		return best, ""
	}
	if len(reasons) == 0 {
		if len(devs) == 0 {
			return nil, "no GPU found"
		}
		return nil, "no GPU here has " + strings.Join(candidates, " or ")
	}
	return nil, strings.Join(reasons, "; ")
}

// usable returns the first candidate backend that works on d and reads frames
// of type frames (any when frames is ""), or why none does, with ffmpeg's line.
func usable(d *Device, want string, candidates []string, frames string) (string, *EncoderResult, string) {
	var why []string
	for _, c := range candidates {
		r := d.encoder(c)
		switch {
		case r == nil:
			continue
		case !r.Working:
			why = append(why, describe(d)+": "+r.Encoder+": "+r.Error)
		case frames != "" && backendByName(c).frames != frames && backendByName(c).frames != "":
			why = append(why, fmt.Sprintf("%s works on %s but reads %s frames and this job's frames are %s: one GPU frame type per job",
				c, describe(d), backendByName(c).frames, frames))
		default:
			return c, r, ""
		}
	}
	if len(why) == 0 {
		return "", nil, fmt.Sprintf("%s has no %s", describe(d), strings.Join(candidates, " or "))
	}
	return "", nil, strings.Join(why, "; ")
}

func countPool(hs []hold, key string) int {
	n := 0
	for _, h := range hs {
		if h.pool == key {
			n++
		}
	}
	return n
}

// usageLocked says how a pool is used, counting extra sessions about to be held.
func (s *Service) usageLocked(key string, extra int) string {
	p := s.pools[key]
	if p == nil {
		return "no pool"
	}
	msg := fmt.Sprintf("%d of %d in use", s.usedLocked(key)+extra, p.capacity)
	if p.learned != "" {
		msg += " (" + p.learned + ")"
	}
	return msg
}

// decodeFrames is the frame type d's decode trial used.
func decodeFrames(d *Device) string {
	if d.Decode == nil || !d.Decode.OK {
		return ""
	}
	if d.Vendor == VendorNVIDIA {
		return FramesCUDA
	}
	return FramesVAAPI
}

// decodes reports whether d decoded codec in its trial with frames of this type.
// The trial clip is H.264, so only H.264 sources are decoded on the GPU.
func decodes(d *Device, frames, codec string) bool {
	return frames != "" && decodeFrames(d) == frames && codec == "h264"
}

// Release frees the sessions job id holds. Call it when the job ends; calling it
// again, or for a job that held none, does nothing.
func (s *Service) Release(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held, id)
}

// Failure is what a failed ffmpeg run said about the hardware.
type Failure struct {
	Kind string `json:"kind"` // one of the Kind constants
	Line string `json:"line"` // ffmpeg's own line
	// Rungs are the hardware rungs to move to x264.
	Rungs []string `json:"rungs,omitempty"`
	// NoDecode turns decoding on the GPU off; NoDevice drops the GPU from the
	// job altogether (it failed as a device). Neither needs the ladder's
	// consent: they change how frames travel, not which encoder encodes.
	NoDecode bool `json:"no_decode,omitempty"`
	NoDevice bool `json:"no_device,omitempty"`
}

// Diagnose reads the stderr tail of an ffmpeg run of admission a that failed,
// and tells whether the hardware caused it and what to change. ok is false when
// the run used no hardware or the failure is not the hardware's (a source that
// went away): retry as usual then.
//
// A session limit or an encoder that cannot open on output N moves the rung of
// output N and the later rungs of that backend (they were never tried, and would
// hit the same limit); a device, driver or mid-stream failure moves every
// hardware rung and drops the GPU; a hardware decoder that cannot start turns
// decoding on the GPU off.
func Diagnose(a Admission, stderr []string) (f Failure, ok bool) {
	hwRungs := a.HardwareRungs()
	if a.HW.Type == "" && len(hwRungs) == 0 {
		return Failure{}, false
	}
	line, kind, known := reason(stderr)
	if !known {
		return Failure{}, false
	}
	f = Failure{Kind: kind, Line: line}
	switch kind {
	case KindDecode:
		if a.HW.Decode {
			f.NoDecode = true
			return f, true
		}
		f.NoDevice, f.Rungs = true, hwRungs
	case KindSessionLimit, KindNoEncoder, KindOther:
		n := failedOutput(stderr)
		if n < 0 || n >= len(a.Plan.Video) || !IsHardware(a.Plan.Video[n].Encoder) {
			if kind == KindOther && n < 0 {
				// A hardware component logged something, but no encoder
				// failed to open: the device failed.
				f.NoDevice, f.Rungs = true, hwRungs
				break
			}
			f.Rungs = hwRungs
			break
		}
		backend := a.Plan.Video[n].Encoder
		for _, v := range a.Plan.Video[n:] {
			if v.Encoder == backend {
				f.Rungs = append(f.Rungs, v.Name)
			}
		}
	default: // no-library, no-device, driver, frames, runtime
		f.NoDevice, f.Rungs = true, hwRungs
	}
	return f, true
}

// Fallback applies failure f to admission a of job id and returns the admission
// to run next. It moves f.Rungs to x264 (listed in Moved with ffmpeg's line)
// and frees their sessions; when l.Fallback is "none" and rungs would move, it
// fails with ErrHardwareFailed and ffmpeg's line instead. A session limit hit at
// runtime lowers the pool's capacity to what was open, until the next probe.
func (s *Service) Fallback(id string, l *ladder.Ladder, a Admission, f Failure) (Admission, error) {
	if l == nil {
		return a, errors.New("fallback: no ladder")
	}
	if len(f.Rungs) > 0 && l.Fallback == "none" {
		return a, fmt.Errorf("ladder %q says fallback: none: rungs %s: %s: %w", l.Name, strings.Join(f.Rungs, ", "), f.Line, ErrHardwareFailed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := a
	next.Plan.Video = slices.Clone(a.Plan.Video)
	next.Moved = slices.Clone(a.Moved)
	next.Notes = slices.Clone(a.Notes)
	hs := s.held[id]
	limited := map[string]bool{}
	for i := range next.Plan.Video {
		v := &next.Plan.Video[i]
		if !slices.Contains(f.Rungs, v.Name) || !IsHardware(v.Encoder) {
			continue
		}
		next.Moved = append(next.Moved, Move{Rung: v.Name, Wanted: wanted(l, v.Name), From: v.Encoder, To: BackendX264,
			Reason: v.Encoder + " failed (" + f.Kind + "): " + f.Line})
		v.Encoder = BackendX264
		for j, h := range hs {
			if h.rung == v.Name {
				if f.Kind == KindSessionLimit {
					limited[h.pool] = true
				}
				hs = slices.Delete(hs, j, j+1)
				break
			}
		}
	}
	if len(hs) == 0 {
		delete(s.held, id)
	} else {
		s.held[id] = hs
	}
	for key := range limited {
		if p := s.pools[key]; p != nil {
			used := s.usedLocked(key)
			p.capacity = used
			p.learned = fmt.Sprintf("a job hit the session limit at runtime with %d open: %s", used, f.Line)
			s.log.Warn().Str("pool", key).Int("capacity", used).Str("ffmpeg", f.Line).Msg("encoder session limit lower than probed")
		}
	}
	if f.NoDecode || f.NoDevice {
		next.HW.Decode = false
		next.Notes = append(next.Notes, "decoding on the GPU turned off: "+f.Line)
	}
	if f.NoDevice {
		next.HW, next.Device = Hardware{}, ""
		next.Notes = append(next.Notes, "GPU dropped from the job: "+f.Line)
	}
	if next.HW.Type != "" {
		// Frames stay on the GPU only for rungs that read them there, or for
		// x264 rungs when the GPU decodes.
		need := next.HW.Decode
		for _, v := range next.Plan.Video {
			if IsHardware(v.Encoder) && backendByName(v.Encoder).frames == next.HW.Type {
				need = true
			}
		}
		if !need {
			next.HW, next.Device = Hardware{}, ""
		}
	}
	return next, nil
}

// String sums an admission up for a log line: "720p=nvenc 360p=x264 on renderD128 (cuda:0, decode)".
func (a Admission) String() string {
	parts := make([]string, 0, len(a.Plan.Video)+1)
	for _, v := range a.Plan.Video {
		parts = append(parts, v.Name+"="+v.Encoder)
	}
	s := strings.Join(parts, " ")
	if a.HW.Type != "" {
		s += " on " + a.Device + " (" + a.HW.Type + ":" + a.HW.Device
		if a.HW.Decode {
			s += ", decode"
		}
		s += ")"
	}
	return s
}
