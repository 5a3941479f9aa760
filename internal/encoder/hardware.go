package encoder

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
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
		return fmt.Errorf("hardware: unknown frame type %q: want %s", h.Type, frameTypeNames())
	}
	var errs []error
	switch {
	case h.Device == "":
		errs = append(errs, fmt.Errorf("hardware: %s needs a device", h.Type))
	case breaksDevice(h.Device):
		errs = append(errs, fmt.Errorf("hardware: device %q contains a character -init_hw_device cannot take", h.Device))
	}
	if h.Decode && !ft.decode {
		errs = append(errs, fmt.Errorf("hardware: decoding on %s frames is not supported", h.Type))
	}
	if err := h.validateScaler(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validateScaler accepts no scaler, or one a frame type offers a choice of, on
// frames of that type.
func (h Hardware) validateScaler() error {
	if h.Scaler == "" {
		return nil
	}
	for name, ft := range frameTypes {
		if len(ft.scalers) > 1 && slices.Contains(ft.scalers, h.Scaler) {
			if h.Type != name {
				return fmt.Errorf("hardware: scaler %q needs %s frames", h.Scaler, name)
			}
			return nil
		}
	}
	return fmt.Errorf("hardware: unknown scaler %q", h.Scaler)
}

// breaksDevice reports whether a device name holds a character that would end
// the device string inside -init_hw_device: a separator or a control character.
func breaksDevice(dev string) bool {
	return strings.ContainsFunc(dev, func(r rune) bool { return r < 0x20 || r == 0x7f || strings.ContainsRune(",:@=", r) })
}

// frameTypeNames lists the frame types for an error: "cuda, qsv or vaapi".
func frameTypeNames() string {
	names := make([]string, 0, len(frameTypes))
	for name := range frameTypes {
		names = append(names, name)
	}
	sort.Strings(names)
	last := len(names) - 1
	return strings.Join(names[:last], ", ") + " or " + names[last]
}

// InputArgs returns the options that go before the source's own input options and
// -i: the device, the filters' device and, with Decode, the hardware decoder.
// The zero Hardware returns nothing.
func (h Hardware) InputArgs() []string {
	if h.Type == "" {
		return nil
	}
	var args []string
	if via := frameTypes[h.Type].via; via != "" {
		args = []string{"-init_hw_device", via + "=va:" + h.Device, "-init_hw_device", h.Type + "=hw@va"}
	} else {
		args = []string{"-init_hw_device", h.Type + "=hw:" + h.Device}
	}
	args = append(args, "-filter_hw_device", "hw")
	if h.Decode {
		args = append(args, "-hwaccel", h.Type, "-hwaccel_device", "hw", "-hwaccel_output_format", h.Type)
	}
	return args
}

// Env returns environment variables ffmpeg needs for h: with CUDA,
// CUDA_DEVICE_ORDER=PCI_BUS_ID makes CUDA ordinals follow the PCI bus order,
// which is nvidia-smi's index order, so the device probed is the device used.
func (h Hardware) Env() []string {
	if ft, ok := frameTypes[h.Type]; ok {
		return slices.Clone(ft.env)
	}
	return nil
}

// upload is appended after the fps filter: frames already on the device pass
// through hwupload, software frames are converted to nv12 and uploaded.
func (h Hardware) upload() string {
	return ",format=nv12|" + h.Type + ",hwupload" + frameTypes[h.Type].upload
}

// scale returns the scaler on h's device for w x ht, producing 8-bit nv12 there.
func (h Hardware) scale(w, ht int) string {
	scaler := h.Scaler
	if scaler == "" {
		scaler = frameTypes[h.Type].scalers[0]
	}
	return fmt.Sprintf("%s=w=%d:h=%d:format=nv12", scaler, w, ht)
}
