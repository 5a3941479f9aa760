package ffmpeg

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// needTool returns the path of a real binary the test needs. It skips the test
// when the binary is missing, unless TRANSCODERD_REQUIRE_FFMPEG is set (CI),
// where a missing ffmpeg is a failure.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("TRANSCODERD_REQUIRE_FFMPEG") != "" {
			t.Fatalf("%s is required: %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

// makeMedia writes a small file with ffmpeg from the given arguments (inputs
// and output options) and returns its path.
func makeMedia(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	ff := needTool(t, "ffmpeg")
	out := filepath.Join(dir, name)
	argv := append([]string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y"}, args...)
	argv = append(argv, out)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if b, err := exec.CommandContext(ctx, ff, argv...).CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", name, err, b)
	}
	return out
}

// closedPort returns a local TCP address that nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
