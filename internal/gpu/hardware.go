package gpu

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/transcoderd/transcoderd/internal/ladder"
)

// Hardware frame types: the ffmpeg hardware device type a job's frames live on.
const (
	FramesCUDA  = "cuda"
	FramesVAAPI = "vaapi"
	FramesQSV   = "qsv"
)

// Hardware is one job's use of one GPU. The zero value means none: every frame
// stays in system memory, which is the software path exactly as it always was.
//
// When Type is set, the job's single ffmpeg opens the device once, brings the
// picture onto it once (right after the fps filter, before the split), and each
// rung scales on the GPU: hardware encoders read the scaled frames where they are,
// and x264 rungs download their small scaled picture. With Decode the source is
// also decoded on the device; a codec the device cannot decode is decoded in
// software and uploaded by the same graph, so Decode never breaks a job that
// would work without it.
type Hardware struct {
	Type   string `json:"type,omitempty"`   // FramesCUDA, FramesVAAPI, FramesQSV; "" none
	Device string `json:"device,omitempty"` // CUDA ordinal ("0") or DRM render node ("/dev/dri/renderD128")
	Decode bool   `json:"decode,omitempty"` // decode the source on the device (cuda and vaapi)
	Scaler string `json:"scaler,omitempty"` // cuda only: "scale_cuda" (default) or "scale_npp"
}

// frameType is what the argv needs to know about one hardware frame type.
type frameType struct {
	// init returns the options that open the device as "hw" and make it the
	// filters' device.
	init func(dev string) []string
	// hwaccel is the -hwaccel name for decoding on the device; "" when decoding
	// there is not supported.
	hwaccel string
	// upload is appended after the fps filter: frames already on the device pass
	// through hwupload, software frames are converted to nv12 and uploaded.
	upload string
	// scale returns the scaler for w x h, producing 8-bit nv12 on the device.
	scale func(w, h int, scaler string) string
}

// frameTypes are the supported hardware frame types. Tests add a Vulkan entry to
// run the same graphs on a software Vulkan device (lavapipe) with the real ffmpeg.
var frameTypes = map[string]frameType{
	FramesCUDA: {
		init: func(dev string) []string {
			return []string{"-init_hw_device", "cuda=hw:" + dev, "-filter_hw_device", "hw"}
		},
		hwaccel: "cuda",
		upload:  ",format=nv12|cuda,hwupload",
		scale: func(w, h int, scaler string) string {
			if scaler == "" {
				scaler = "scale_cuda"
			}
			return fmt.Sprintf("%s=w=%d:h=%d:format=nv12", scaler, w, h)
		},
	},
	FramesVAAPI: {
		init: func(dev string) []string {
			return []string{"-init_hw_device", "vaapi=hw:" + dev, "-filter_hw_device", "hw"}
		},
		hwaccel: "vaapi",
		upload:  ",format=nv12|vaapi,hwupload",
		scale:   func(w, h int, _ string) string { return fmt.Sprintf("scale_vaapi=w=%d:h=%d:format=nv12", w, h) },
	},
	FramesQSV: {
		// oneVPL/MediaSDK on Linux sits on VAAPI: open the render node first and
		// derive the QSV device from it, so the node is the one asked for.
		init: func(dev string) []string {
			return []string{"-init_hw_device", "vaapi=va:" + dev, "-init_hw_device", "qsv=hw@va", "-filter_hw_device", "hw"}
		},
		// QSV frame pools are fixed-size: the upload needs headroom for the
		// frames every branch holds at once.
		upload: ",format=nv12|qsv,hwupload=extra_hw_frames=64",
		scale:  func(w, h int, _ string) string { return fmt.Sprintf("vpp_qsv=w=%d:h=%d:format=nv12", w, h) },
	},
}

// Validate reports what is wrong with h.
func (h Hardware) Validate() error {
	if h.Type == "" {
		if h != (Hardware{}) {
			return errors.New("hardware: device, decode or scaler set without a frame type")
		}
		return nil
	}
	ft, ok := frameTypes[h.Type]
	if !ok {
		return fmt.Errorf("hardware: unknown frame type %q: want cuda, vaapi or qsv", h.Type)
	}
	var errs []error
	switch {
	case h.Device == "":
		errs = append(errs, fmt.Errorf("hardware: %s needs a device", h.Type))
	case strings.ContainsAny(h.Device, ",:@=") || hasControl(h.Device):
		// These would end the device string inside -init_hw_device.
		errs = append(errs, fmt.Errorf("hardware: device %q contains a character -init_hw_device cannot take", h.Device))
	}
	if h.Decode && ft.hwaccel == "" {
		errs = append(errs, fmt.Errorf("hardware: decoding on %s frames is not supported", h.Type))
	}
	switch h.Scaler {
	case "":
	case "scale_cuda", "scale_npp":
		if h.Type != FramesCUDA {
			errs = append(errs, fmt.Errorf("hardware: scaler %q needs cuda frames", h.Scaler))
		}
	default:
		errs = append(errs, fmt.Errorf("hardware: unknown scaler %q", h.Scaler))
	}
	return errors.Join(errs...)
}

// InputArgs returns the options that go before the source's own input options and
// -i: the device, the filters' device and, with Decode, the hardware decoder.
// The zero Hardware returns nothing.
func (h Hardware) InputArgs() []string {
	if h.Type == "" {
		return nil
	}
	ft := frameTypes[h.Type]
	args := ft.init(h.Device)
	if h.Decode {
		args = append(args, "-hwaccel", ft.hwaccel, "-hwaccel_device", "hw", "-hwaccel_output_format", ft.hwaccel)
	}
	return args
}

// Env returns environment variables ffmpeg needs for h: with CUDA,
// CUDA_DEVICE_ORDER=PCI_BUS_ID makes CUDA ordinals follow the PCI bus order,
// which is nvidia-smi's index order, so the device probed is the device used.
func (h Hardware) Env() []string {
	if h.Type == FramesCUDA {
		return []string{"CUDA_DEVICE_ORDER=PCI_BUS_ID"}
	}
	return nil
}

// hwScale returns the scaler on h's device for w x h.
func (h Hardware) hwScale(w, ht int) string {
	return frameTypes[h.Type].scale(w, ht, h.Scaler)
}

// FilterGraph returns the -filter_complex graph of a plan: the first video stream
// at frame rate fps (written as ffmpeg takes it, e.g. "30000/1001"), brought onto
// hw's device when hw is set, split once per rung, each branch made ready for its
// rung's encoder by that encoder's Scale and labelled [v0], [v1]...
func FilterGraph(fps string, rungs []ladder.PlannedVideo, hw Hardware) (string, error) {
	if err := hw.Validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("[0:v:0]fps=")
	b.WriteString(fps)
	if hw.Type != "" {
		b.WriteString(frameTypes[hw.Type].upload)
	}
	n := len(rungs)
	if n > 1 {
		b.WriteString(",split=" + strconv.Itoa(n))
		for i := range n {
			b.WriteString("[s" + strconv.Itoa(i) + "]")
		}
	}
	var errs []error
	for i, v := range rungs {
		enc, err := Resolve(v.Encoder)
		if err != nil {
			errs = append(errs, fmt.Errorf("rung %q: %w", v.Name, err))
			continue
		}
		chain, err := enc.Scale(v.Width, v.Height, hw)
		if err != nil {
			errs = append(errs, fmt.Errorf("rung %q: %w", v.Name, err))
			continue
		}
		if n > 1 {
			b.WriteString(";[s" + strconv.Itoa(i) + "]")
		} else {
			b.WriteString(",")
		}
		b.WriteString(chain + "[v" + strconv.Itoa(i) + "]")
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	return b.String(), nil
}

// softwareScale is the chain for an encoder that reads system memory: scale in
// software from software frames, or scale on the device and download the small
// result from hardware frames. pixFmt is the encoder's input format.
func softwareScale(w, h int, hw Hardware, pixFmt string) string {
	if hw.Type == "" {
		return fmt.Sprintf("scale=%d:%d:flags=bicubic,setsar=1,format=%s", w, h, pixFmt)
	}
	return hw.hwScale(w, h) + ",hwdownload,format=nv12,setsar=1,format=" + pixFmt
}

// hardwareScale is the chain for an encoder that reads frames of type frames: it
// scales on the device and needs the job's frames there.
func hardwareScale(name, frames string, w, h int, hw Hardware) (string, error) {
	if hw.Type != frames {
		have := "no hardware device"
		if hw.Type != "" {
			have = hw.Type + " frames"
		}
		return "", fmt.Errorf("encoder %s needs %s frames but the job has %s: %w", name, frames, have, ErrUnavailable)
	}
	return hw.hwScale(w, h) + ",setsar=1", nil
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
