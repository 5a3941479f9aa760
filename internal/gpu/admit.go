package gpu

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/transcoderd/transcoderd/internal/encoder"
	"github.com/transcoderd/transcoderd/internal/ladder"
)

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
	a, holds, err := s.placeLocked(l, p, src)
	if err != nil {
		return Admission{}, err
	}
	if len(holds) > 0 {
		s.held[id] = holds
	}
	return a, nil
}

// Place is Admit without holding anything: how plan p of ladder l would run if it
// were admitted now, for the CPU cap to cost a job on the encoders it will use
// before it starts. A rung that Admit would refuse (fallback: none) is on x264
// here; Admit says why when the job starts.
func (s *Service) Place(l *ladder.Ladder, p ladder.Plan, src ladder.SourceInfo) Admission {
	if l == nil {
		return Admission{Plan: p}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, _, _ := s.placeLocked(l, p, src)
	return a
}

// placeLocked decides how plan p of ladder l runs now, and which sessions that
// takes; err joins the rungs that cannot move to x264. s.mu is held.
func (s *Service) placeLocked(l *ladder.Ladder, p ladder.Plan, src ladder.SourceInfo) (Admission, []hold, error) {
	a := Admission{Plan: p}
	a.Plan.Video = slices.Clone(p.Video)
	if len(a.Plan.Video) == 0 {
		return a, nil, nil
	}
	ad := admitting{s: s, caps: s.caps, l: l, a: &a}
	for i := range a.Plan.Video {
		ad.place(&a.Plan.Video[i])
	}
	ad.attach(src.VideoCodec)
	a.Notes = append(a.Notes, encoder.TuneNotes(a.Plan.Video)...)
	return a, ad.holds, errors.Join(ad.errs...)
}

// admitting is one Admit call under way, with s.mu held.
type admitting struct {
	s    *Service
	caps Capabilities
	l    *ladder.Ladder
	a    *Admission

	dev      *Device // the job's GPU, chosen by its first hardware rung
	frames   string  // the frame type of the job's hardware rungs
	holds    []hold  // the sessions reserved so far
	errs     []error // rungs that cannot move to x264 (fallback: none)
	wantsGPU bool    // a rung asked for something other than x264
}

// place decides which backend encodes rung v: what its ladder asks, where that
// works and has a session left, else x264, said in Moved.
func (ad *admitting) place(v *ladder.PlannedVideo) {
	want := Wanted(ad.l, v.Name)
	v.Encoder = encoder.X264
	if want == encoder.X264 {
		return
	}
	ad.wantsGPU = true
	candidates := ad.candidates(want)
	if len(candidates) == 0 {
		return
	}
	backend, why := ad.reserve(v.Name, want, candidates)
	if backend != "" {
		v.Encoder = backend
		return
	}
	if why == "" {
		why = "no working " + strings.Join(candidates, " or ")
	}
	ad.a.Moved = append(ad.a.Moved, Move{Rung: v.Name, Wanted: want, To: encoder.X264, Reason: why})
	if ad.l.Fallback == "none" {
		sentinel := ErrNoEncoder
		if strings.HasPrefix(why, "no ") && strings.Contains(why, " session left") {
			sentinel = ErrNoSession
		}
		ad.errs = append(ad.errs, fmt.Errorf("rung %q wants %s and ladder %q says fallback: none: %s: %w", v.Name, want, ad.l.Name, why, sentinel))
	}
}

// candidates returns the backends that may encode a rung that wants want, best
// first; none when auto resolved to x264, which it notes.
func (ad *admitting) candidates(want string) []string {
	switch want {
	case encoder.Auto:
		if encoder.IsHardware(ad.caps.Auto.Encoder) {
			return []string{ad.caps.Auto.Encoder}
		}
		note := "auto resolved to x264: " + ad.caps.Auto.Reason
		if !ad.s.probed {
			note = "auto resolved to x264: the hardware has not been probed"
		}
		if !slices.Contains(ad.a.Notes, note) {
			ad.a.Notes = append(ad.a.Notes, note)
		}
		return nil
	case encoder.VCE:
		var amd []string
		for _, be := range encoder.OnVendor(encoder.VendorAMD) {
			amd = append(amd, be.Name)
		}
		return amd
	}
	return []string{want}
}

// reserve finds the job's device (on its first hardware rung) and a candidate
// that works there with a session left, and holds that session for rung; why
// says why none does.
func (ad *admitting) reserve(rung, want string, candidates []string) (backend, why string) {
	if ad.dev == nil {
		ad.dev, why = ad.s.pickLocked(ad.caps.Devices, want, candidates)
		if ad.dev == nil {
			return "", why
		}
	}
	backend, r, why := usable(ad.dev, want, candidates, ad.frames)
	if r == nil {
		return "", why
	}
	key := poolKey(ad.dev, r)
	if local := countPool(ad.holds, key); ad.s.freeLocked(key)-local <= 0 {
		return "", fmt.Sprintf("no %s session left on %s: %s", r.Backend, describe(ad.dev), ad.s.usageLocked(key, local))
	}
	ad.holds = append(ad.holds, hold{pool: key, rung: rung})
	ad.a.CPUPerMpx = max(ad.a.CPUPerMpx, r.CPUPerMpx)
	if ad.frames == "" {
		ad.frames = framesOf(backend)
	}
	return backend, ""
}

// attach sets the job's GPU: the device of its hardware rungs, which also
// decodes codec where its trial proved it; else, when the ladder wanted a GPU
// but no rung encodes on one, a GPU that decodes and scales for x264.
func (ad *admitting) attach(codec string) {
	a, caps := ad.a, ad.caps
	if ad.dev != nil && len(ad.holds) > 0 {
		a.Device = ad.dev.ID
		if ad.frames != "" {
			a.HW = ad.dev.hardware(ad.frames)
			a.HW.Scaler = scaler(caps.FFmpeg, ad.frames)
			a.HW.Decode = decodes(ad.dev, ad.frames, codec)
		}
		if a.HW.Decode {
			a.Notes = append(a.Notes, describe(ad.dev)+" decodes, scales and encodes")
		}
		return
	}
	if !ad.wantsGPU {
		return
	}
	for i := range caps.Devices {
		d := &caps.Devices[i]
		if f := decodedFrames(d); f != "" && decodes(d, f, codec) {
			a.Device, a.HW = d.ID, d.hardware(f)
			a.HW.Scaler, a.HW.Decode = scaler(caps.FFmpeg, f), true
			a.Notes = append(a.Notes, "x264 encodes; "+describe(d)+" decodes and scales")
			return
		}
	}
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
		if want == encoder.VCE && d.Vendor != encoder.VendorAMD {
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
		case frames != "" && framesOf(c) != frames && framesOf(c) != "":
			why = append(why, fmt.Sprintf("%s works on %s but reads %s frames and this job's frames are %s: one GPU frame type per job",
				c, describe(d), framesOf(c), frames))
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

// decodedFrames is the frame type d's decode trial proved, "" when none.
func decodedFrames(d *Device) string {
	if d.Decode == nil || !d.Decode.OK {
		return ""
	}
	return decodeFrames(d.Vendor)
}

// decodes reports whether d decoded codec in its trial with frames of this type.
// The trial clip is H.264, so only H.264 sources are decoded on the GPU.
func decodes(d *Device, frames, codec string) bool {
	return frames != "" && decodedFrames(d) == frames && codec == "h264"
}
