package job

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/profiles"
)

// testManager returns a Manager on the ffmpeg in PATH with cfg's fields, the others
// filled for a test: temporary output and media folders, the embedded ladders, warnings
// logged to the test; its runners wait as tm says (at most one; zero fields and none
// take the daemon's figures). It is closed when the test ends (closing it earlier is
// fine).
func testManager(t *testing.T, cfg Config, tm ...timing) *Manager {
	t.Helper()
	if cfg.Output == "" {
		cfg.Output = t.TempDir()
	}
	if cfg.MediaRoot == "" {
		cfg.MediaRoot = t.TempDir()
	}
	cfg.FFmpeg, cfg.FFprobe = "ffmpeg", "ffprobe"
	if cfg.Ladders == nil {
		cfg.Ladders = ladder.NewStore(filepath.Join(t.TempDir(), "none"), profiles.FS)
	}
	cfg.Log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	m := newManager(cfg, append(tm, timing{})[0], time.Now)
	t.Cleanup(m.Close)
	return m
}
