package daemon

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestDaemonKilledMidProbe kills the daemon with -9 while its hardware probe runs an
// ffmpeg, and finds no ffmpeg left. The daemon's ffmpeg is a script that runs the real
// one, except for the probe's -hwaccels listing (the startup check never asks for it):
// that one records its pid and hangs. Every ffmpeg the probe starts (listings, trial
// encodes, session counts) goes through the same supervisor; this box has no GPU for
// trial encodes, the listing stands for them.
func TestDaemonKilledMidProbe(t *testing.T) {
	testmedia.RequireFFmpeg(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "transcoderd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/transcoderd/transcoderd/cmd/transcoderd").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	real, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal(err)
	}
	probing := filepath.Join(dir, "probing")
	fake := filepath.Join(dir, "ffmpeg")
	script := "#!/bin/sh\nfor a in \"$@\"; do\n  if [ \"$a\" = -hwaccels ]; then echo $$ > " + probing + ".tmp; mv " + probing + ".tmp " + probing +
		"; exec sleep 300; fi\ndone\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--output", filepath.Join(dir, "out"),
		"--data", filepath.Join(dir, "data"), "--media-root", filepath.Join(dir, "media"), "--profiles", filepath.Join(dir, "profiles"),
		"--ffmpeg", fake, "--log-format", "json")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })

	pid := 0
	for deadline := time.Now().Add(time.Minute); pid == 0; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(probing); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("the daemon's probe never ran ffmpeg -hwaccels; its log:\n%s", log)
		}
	}
	t.Cleanup(func() { _ = exec.Command("kill", "-9", strconv.Itoa(pid)).Run() })
	if !testmedia.Running(pid) {
		t.Fatalf("the probe's ffmpeg %d is not running", pid)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = cmd.Process.Wait()
	for deadline := time.Now().Add(5 * time.Second); testmedia.Running(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the probe's ffmpeg %d outlived the daemon killed with -9", pid)
		}
	}
}
