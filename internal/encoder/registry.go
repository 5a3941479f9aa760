package encoder

import (
	"slices"
	"strings"

	"github.com/transcoderd/transcoderd/internal/ladder"
)

// Backend is one row of the registry: a video encoder backend and what the
// argv, the probe and the session budget need to know about it. Every other
// table of backends (which names exist, which frames each reads, what the
// probe checks in the ffmpeg build, which backends a vendor's GPU is tried
// with, how a device is opened) is derived from these rows.
type Backend struct {
	Name   string // as ladders and plans spell it: "nvenc"
	FFmpeg string // ffmpeg's encoder, selected with -c:v: "h264_nvenc"
	// Frames is the hardware frame type it reads ("cuda"), which is also the
	// -hwaccel of that device type; "" when it reads system memory.
	Frames string
	// Vendors are the GPU vendors the probe tries it on, none for software.
	Vendors []string
	Encoder Encoder // its options for a rung

	pixFmt string     // system-memory encoders: the pixel format they read
	hw     *frameType // hardware-frame encoders: how ffmpeg reaches the frames
}

// frameType is how ffmpeg opens a device of one hardware frame type, brings
// frames onto it and scales them there. The device is named "hw"; the filters
// run on it.
type frameType struct {
	// via is the device type opened first (as "va") that this one derives
	// from, for frame types that sit on another API; "" opens it directly.
	via string
	// decode is set when -hwaccel of this type decodes onto these frames.
	decode bool
	// upload is hwupload's options, appended to it.
	upload string
	// scalers are the filters that scale on the device to 8-bit nv12, the
	// default first; where there are several a job may choose (Hardware.Scaler).
	scalers []string
	// env is the environment ffmpeg needs to find the device as probed.
	env []string
}

// registry lists the backends, software first, then the hardware ones in the
// order Auto prefers them.
var registry = []Backend{
	{Name: X264, FFmpeg: "libx264", Encoder: x264, pixFmt: "yuv420p"},
	{Name: NVENC, FFmpeg: "h264_nvenc", Frames: FramesCUDA, Vendors: []string{VendorNVIDIA}, Encoder: nvenc,
		hw: &frameType{decode: true, scalers: []string{"scale_cuda", "scale_npp"},
			// CUDA ordinals follow the PCI bus order, which is nvidia-smi's
			// index order, so the device probed is the device used.
			env: []string{"CUDA_DEVICE_ORDER=PCI_BUS_ID"}}},
	{Name: QSV, FFmpeg: "h264_qsv", Frames: FramesQSV, Vendors: []string{VendorIntel}, Encoder: qsv,
		hw: &frameType{
			// oneVPL/MediaSDK on Linux sits on VAAPI: open the render node
			// first and derive the QSV device from it, so the node is the one
			// asked for.
			via: FramesVAAPI,
			// QSV frame pools are fixed-size: the upload needs headroom for
			// the frames every branch holds at once.
			upload:  "=extra_hw_frames=64",
			scalers: []string{"vpp_qsv"}}},
	{Name: VAAPI, FFmpeg: "h264_vaapi", Frames: FramesVAAPI, Vendors: []string{VendorIntel, VendorAMD, VendorUnknown}, Encoder: vaapi,
		hw: &frameType{decode: true, scalers: []string{"scale_vaapi"}}},
	// AMF reads system memory on Linux.
	{Name: AMF, FFmpeg: "h264_amf", Vendors: []string{VendorAMD}, Encoder: amf, pixFmt: "nv12"},
}

// frameTypes are the hardware frame types, by name, from the registry. Tests
// add a Vulkan entry to run the same graphs on a software Vulkan device
// (lavapipe) with the real ffmpeg.
var frameTypes = func() map[string]*frameType {
	m := map[string]*frameType{}
	for _, b := range registry {
		if b.hw != nil {
			m[b.Frames] = b.hw
		}
	}
	return m
}()

// Backends returns the registry: software first, then the hardware backends in
// the order Auto prefers them.
func Backends() []Backend { return slices.Clone(registry) }

// IsHardware reports whether b encodes on a GPU.
func (b Backend) IsHardware() bool { return len(b.Vendors) > 0 }

// OnVAAPI reports whether b reaches its device through a VAAPI connection
// (vaapi, and qsv, which Linux builds on VAAPI): the device's VAAPI driver must
// load for it to work.
func (b Backend) OnVAAPI() bool {
	return b.Frames == FramesVAAPI || (b.hw != nil && b.hw.via == FramesVAAPI)
}

// Decodes reports whether ffmpeg can decode a source onto the frames b reads
// (Hardware.Decode).
func (b Backend) Decodes() bool { return b.hw != nil && b.hw.decode }

// Scalers returns the filters that scale b's hardware frames on the device, the
// default first; none for system memory.
func (b Backend) Scalers() []string {
	if b.hw == nil {
		return nil
	}
	return slices.Clone(b.hw.scalers)
}

// Filters returns the filters ffmpeg -filters must list for b: a scaler (one
// of several, written "a|b") and hwupload for hardware frames, none otherwise.
func (b Backend) Filters() []string {
	if b.hw == nil {
		return nil
	}
	return []string{strings.Join(b.hw.scalers, "|"), "hwupload"}
}

// VideoArgs returns the output options that select b's encoder and configure
// it for rung r (see Encoder). The caller adds the -map before and the muxer
// options after.
func (b Backend) VideoArgs(r ladder.PlannedVideo, preset string, gop int, segSeconds float64) ([]string, error) {
	opts, err := b.Encoder.Options(r, preset, gop, segSeconds)
	if err != nil {
		return nil, err
	}
	return append([]string{"-c:v", b.FFmpeg}, opts...), nil
}

// TuneNotes says, for each hardware rung of video with a tune, how its backend
// applies the tune ("rung 720p: nvenc: tune zerolatency as ..."), so that a tune
// a backend lacks is never dropped silently. x264 rungs take it as it is.
func TuneNotes(video []ladder.PlannedVideo) []string {
	var notes []string
	for _, v := range video {
		b, err := Resolve(v.Encoder)
		if err != nil {
			continue
		}
		if n := b.Encoder.TuneNote(v.Tune); n != "" {
			notes = append(notes, "rung "+v.Name+": "+b.Name+": "+n)
		}
	}
	return notes
}

// Scale returns the filter chain from one branch of the job's shared picture
// to b's input at w x h with square pixels. The branch holds frames in system
// memory when hw.Type is "", else frames on hw's device.
func (b Backend) Scale(w, h int, hw Hardware) (string, error) {
	if b.Frames == "" {
		return softwareScale(w, h, hw, b.pixFmt), nil
	}
	return hardwareScale(b.Name, b.Frames, w, h, hw)
}
