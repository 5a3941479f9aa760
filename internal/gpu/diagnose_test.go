package gpu

import "testing"

// TestReasonHardwareLines: a line no known failure names is still the
// hardware's when a hardware component logged it: each hardware encoder of the
// registry, the device, and the filters of a graph that move or scale hardware
// frames. Other components' lines are not.
func TestReasonHardwareLines(t *testing.T) {
	tests := []struct {
		line string
		hw   bool
	}{
		{line: "[h264_nvenc @ 0x55d6b2c591c0] InitializeEncoder failed: invalid param (8)", hw: true},
		{line: "[h264_qsv @ 0x55d6b2c591c0] Selected ratecontrol mode is unsupported", hw: true},
		{line: "[h264_vaapi @ 0x55d6b2c591c0] Encode failed: 1 (operation failed).", hw: true},
		{line: "[h264_amf @ 0x55d6b2c591c0] encoder->Init() failed with error 11", hw: true},
		{line: "[AVHWDeviceContext @ 0x55d6b2c591c0] Could not set up the device: permission denied", hw: true},
		{line: "[Parsed_scale_cuda_3 @ 0x55d6b2c591c0] Failed to configure output pad", hw: true},
		{line: "[Parsed_scale_npp_1 @ 0x55d6b2c591c0] Failed to configure output pad", hw: true},
		{line: "[Parsed_vpp_qsv_2 @ 0x55d6b2c591c0] Failed to configure output pad", hw: true},
		{line: "[Parsed_scale_vaapi_4 @ 0x55d6b2c591c0] Failed to configure output pad", hw: true},
		{line: "[Parsed_hwupload_1 @ 0x55d6b2c591c0] A hardware device reference is required", hw: true},
		{line: "[hwdownload @ 0x55d6b2c591c0] Invalid output format", hw: true},
		{line: "[libx264 @ 0x55d6b2c591c0] broken ffmpeg default settings detected"},
		{line: "[Parsed_scale_2 @ 0x55d6b2c591c0] Failed to configure output pad"},
		{line: "[rtmp @ 0x55d6b2c591c0] Cannot open connection tcp://127.0.0.1:1935"},
	}
	for _, tt := range tests {
		line, kind, ok := reason([]string{tt.line, "Conversion failed!"})
		if ok != tt.hw {
			t.Errorf("%q: hardware = %v, want %v", tt.line, ok, tt.hw)
			continue
		}
		if tt.hw && (line != tt.line || kind != kindOther) {
			t.Errorf("%q: reason = %q, %s", tt.line, line, kind)
		}
	}
}
