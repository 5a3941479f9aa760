package testmedia

import (
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// MeanVolume decodes a playlist (or any input) with ffmpeg (ff; "ffmpeg" when empty)
// and its volumedetect filter, and returns the mean volume in dB: how the tests tell
// the audio tracks of a source apart (each is 20 dB quieter than the one before).
func MeanVolume(t testing.TB, ff, input string) float64 {
	t.Helper()
	if ff == "" {
		ff = "ffmpeg"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, ff, "-hide_banner", "-nostdin", "-i", input, "-af", "volumedetect", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("volumedetect %s: %v\n%s", input, err, out)
	}
	_, rest, ok := bytes.Cut(out, []byte("mean_volume: "))
	db, _, _ := bytes.Cut(rest, []byte(" dB"))
	v, err := strconv.ParseFloat(string(db), 64)
	if !ok || err != nil {
		t.Fatalf("volumedetect %s: no mean volume in\n%s", input, out)
	}
	return v
}
