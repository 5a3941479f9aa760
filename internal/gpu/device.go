package gpu

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/transcoderd/transcoderd/internal/encoder"
)

// PCI vendor ids of the GPUs we know how to drive.
const (
	vendorNVIDIA = "0x10de"
	vendorIntel  = "0x8086"
	vendorAMD    = "0x1002"
)

// Device is one GPU as the probe found it.
type Device struct {
	// ID names the device in the API and logs: its render node ("renderD128"),
	// or "nvidia-smi:N" for an NVIDIA GPU without one (no nvidia-drm, or a
	// container that sees the GPU but not its DRM node).
	ID           string `json:"id"`
	Vendor       string `json:"vendor"`                  // encoder.VendorNVIDIA...: nvidia | intel | amd | unknown
	VendorID     string `json:"vendor_id,omitempty"`     // PCI vendor id, "0x10de"
	DeviceID     string `json:"device_id,omitempty"`     // PCI device id, "0x2504"
	PCI          string `json:"pci,omitempty"`           // PCI address, "0000:01:00.0"
	RenderNode   string `json:"render_node,omitempty"`   // "/dev/dri/renderD128"
	KernelDriver string `json:"kernel_driver,omitempty"` // i915, xe, amdgpu, nvidia, nouveau
	Name         string `json:"name,omitempty"`          // marketing name, from nvidia-smi
	// Driver is the user-space driver that encodes: "Intel iHD", "Intel i965",
	// "Mesa Gallium" (VAAPI), "NVIDIA 535.183.01".
	Driver string `json:"driver,omitempty"`
	// DriverLine is ffmpeg's own line that named the VAAPI driver, or the line
	// that said why the VAAPI connection failed.
	DriverLine string `json:"driver_line,omitempty"`
	// DriverError is set when the VAAPI driver could not be initialised.
	DriverError string `json:"driver_error,omitempty"`
	// CUDAIndex is the CUDA ordinal with CUDA_DEVICE_ORDER=PCI_BUS_ID, which
	// is nvidia-smi's index; nil for other vendors.
	CUDAIndex *int `json:"cuda_index,omitempty"`
	// SessionsInUse is the number of encoder sessions nvidia-smi saw open on the
	// device while it was probed; the measured capacity excludes them.
	SessionsInUse int `json:"sessions_in_use,omitempty"`

	// Encoders holds one result per backend tried on the device.
	Encoders []EncoderResult `json:"encoders"`
	// Decode is the trial of decoding and scaling on the device for x264 rungs
	// (and, where an encoder works, for it too); nil when not tried.
	Decode *Trial `json:"decode,omitempty"`
	// Status sums the device up: "encoder" (at least one backend works) or
	// "no-encoder" (GPU present, no encoder).
	Status string `json:"status"`
	// Summary says the same in a sentence, with ffmpeg's reason where one failed.
	Summary string `json:"summary"`
}

// Device statuses.
const (
	statusEncoder   = "encoder"
	statusNoEncoder = "no-encoder"
)

// hardware returns the Hardware that runs frames of type frames on d.
func (d *Device) hardware(frames string) encoder.Hardware {
	h := encoder.Hardware{Type: frames}
	switch frames {
	case encoder.FramesCUDA:
		if d.CUDAIndex != nil {
			h.Device = strconv.Itoa(*d.CUDAIndex)
		}
	default:
		h.Device = d.RenderNode
	}
	return h
}

// decodeFrames is the frame type a GPU of vendor decodes onto: that of the
// first backend tried on it whose frames ffmpeg decodes onto (cuda on NVIDIA,
// vaapi elsewhere).
func decodeFrames(vendor string) string {
	for _, be := range encoder.OnVendor(vendor) {
		if be.Decodes() {
			return be.Frames
		}
	}
	return ""
}

// framesOf is the hardware frame type backend reads, "" for system memory.
func framesOf(backend string) string {
	be, _ := encoder.Resolve(backend)
	return be.Frames
}

// encoder returns d's result for backend, or nil.
func (d *Device) encoder(backend string) *EncoderResult {
	for i := range d.Encoders {
		if d.Encoders[i].Backend == backend {
			return &d.Encoders[i]
		}
	}
	return nil
}

// scanDRM lists the GPUs under root/sys/class/drm: one Device per render node,
// sorted by node number. A missing folder means no GPU, not an error.
func scanDRM(root string) ([]Device, error) {
	base := filepath.Join(root, "sys", "class", "drm")
	matches, err := filepath.Glob(filepath.Join(base, "renderD*"))
	if err != nil {
		return nil, err
	}
	sort.Slice(matches, func(a, b int) bool { return nodeNumber(matches[a]) < nodeNumber(matches[b]) })
	var devs []Device
	var errs []error
	for _, m := range matches {
		name := filepath.Base(m)
		if nodeNumber(name) < 0 {
			continue
		}
		dev := filepath.Join(m, "device")
		vendor, err := readID(filepath.Join(dev, "vendor"))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		id, err := readID(filepath.Join(dev, "device"))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		d := Device{
			ID:         name,
			Vendor:     vendorName(vendor),
			VendorID:   vendor,
			DeviceID:   id,
			RenderNode: "/dev/dri/" + name,
		}
		// device is a link into the PCI tree: .../0000:01:00.0.
		if target, err := os.Readlink(dev); err == nil {
			if pci := filepath.Base(target); pciAddress.MatchString(pci) {
				d.PCI = strings.ToLower(pci)
			}
		}
		if target, err := os.Readlink(filepath.Join(dev, "driver")); err == nil {
			d.KernelDriver = filepath.Base(target)
		}
		devs = append(devs, d)
	}
	return devs, errors.Join(errs...)
}

var (
	pciAddress = regexp.MustCompile(`^[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$`)
	hexID      = regexp.MustCompile(`^0x[0-9a-f]{4}$`)
)

// nodeNumber returns N of renderDN, or -1.
func nodeNumber(path string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(path), "renderD"))
	if err != nil || n < 0 {
		return -1
	}
	return n
}

func readID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	id := strings.ToLower(strings.TrimSpace(string(b)))
	if !hexID.MatchString(id) {
		return "", fmt.Errorf("%s: %q is not a PCI id", path, id)
	}
	return id, nil
}

func vendorName(id string) string {
	switch id {
	case vendorNVIDIA:
		return encoder.VendorNVIDIA
	case vendorIntel:
		return encoder.VendorIntel
	case vendorAMD:
		return encoder.VendorAMD
	}
	return encoder.VendorUnknown
}

// smiGPU is one row of nvidia-smi --query-gpu.
type smiGPU struct {
	index    int
	name     string
	pci      string // normalised to sysfs form: 0000:01:00.0
	driver   string
	sessions int
}

// smiQuery is what the probe asks nvidia-smi.
var smiQuery = []string{"--query-gpu=index,name,pci.bus_id,driver_version,encoder.stats.sessionCount", "--format=csv,noheader"}

// parseSMI reads nvidia-smi's CSV rows:
// "0, NVIDIA GeForce RTX 3060, 00000000:01:00.0, 535.183.01, 0".
func parseSMI(out []byte) ([]smiGPU, error) {
	var gpus []smiGPU
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) != 5 {
			return nil, fmt.Errorf("nvidia-smi: unexpected line %q", line)
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		idx, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("nvidia-smi: index in %q: %w", line, err)
		}
		g := smiGPU{index: idx, name: f[1], pci: normalizePCI(f[2]), driver: f[3]}
		// "[N/A]" or "[Not Supported]" on GPUs without encoder statistics.
		if n, err := strconv.Atoi(f[4]); err == nil {
			g.sessions = n
		}
		gpus = append(gpus, g)
	}
	return gpus, sc.Err()
}

// normalizePCI turns nvidia-smi's "00000000:01:00.0" into sysfs's "0000:01:00.0".
func normalizePCI(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	dom, rest, ok := strings.Cut(s, ":")
	if !ok {
		return s
	}
	if len(dom) > 4 {
		dom = dom[len(dom)-4:]
	}
	return dom + ":" + rest
}

// mergeSMI adds what nvidia-smi knows to the NVIDIA devices found in sysfs,
// matching them by PCI address (CUDA, NVML and DRM orders can differ), and adds
// GPUs that nvidia-smi lists but sysfs does not show.
func mergeSMI(devs []Device, gpus []smiGPU) []Device {
	for _, g := range gpus {
		idx := g.index
		matched := false
		for i := range devs {
			if devs[i].Vendor == encoder.VendorNVIDIA && devs[i].PCI != "" && devs[i].PCI == g.pci {
				d := &devs[i]
				d.Name, d.Driver, d.SessionsInUse, d.CUDAIndex = g.name, "NVIDIA "+g.driver, g.sessions, &idx
				matched = true
				break
			}
		}
		if !matched {
			devs = append(devs, Device{
				ID:            "nvidia-smi:" + strconv.Itoa(g.index),
				Vendor:        encoder.VendorNVIDIA,
				VendorID:      vendorNVIDIA,
				PCI:           g.pci,
				Name:          g.name,
				Driver:        "NVIDIA " + g.driver,
				SessionsInUse: g.sessions,
				CUDAIndex:     &idx,
			})
		}
	}
	return devs
}

// pciOrdinals numbers the NVIDIA GPUs when nvidia-smi cannot: without it, CUDA
// ordinals follow the PCI order of the NVIDIA GPUs (CUDA_DEVICE_ORDER=PCI_BUS_ID).
func pciOrdinals(devs []Device) {
	var nv []*Device
	for i := range devs {
		if devs[i].Vendor == encoder.VendorNVIDIA && devs[i].PCI != "" {
			nv = append(nv, &devs[i])
		}
	}
	sort.Slice(nv, func(a, b int) bool { return nv[a].PCI < nv[b].PCI })
	for i, d := range nv {
		idx := i
		d.CUDAIndex = &idx
	}
}

// noNVENC lists NVIDIA GPUs known to have NVDEC but no NVENC, to explain a
// failed trial; the trial, not this list, decides.
var noNVENC = regexp.MustCompile(`(?i)\b(A100|A30|A800|H100|H200|H800|H20|B100|B200|GB200|GT ?710|GT ?730|MX ?\d{3})\b`)
