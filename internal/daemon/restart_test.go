package daemon

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestDaemonRestart kills the daemon with -9 in the middle of a live job, then restarts
// it, then stops it gracefully (SIGTERM) and restarts it again. Each time: no ffmpeg is
// left orphaned, the live job resumes into the same folder and the same presentation,
// and a finished job keeps its history.
func TestDaemonRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restart test takes about a minute")
	}
	testmedia.RequireFFmpeg(t)
	bin := buildDaemon(t)
	dir := t.TempDir()
	profiles, _ := filepath.Abs("../../profiles")
	port := freePort(t)
	d := &daemon{api: fmt.Sprintf("http://127.0.0.1:%d", port), out: filepath.Join(dir, "out"), mediaRoot: filepath.Join(dir, "media")}
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--output", d.out,
			"--profiles", profiles, "--data", filepath.Join(dir, "data"), "--media-root", d.mediaRoot, "--log-format", "json")
		logf, err := os.OpenFile(filepath.Join(dir, "daemon.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait(); logf.Close() })
		waitHTTP(t, d.api+"/healthz")
		return cmd
	}
	defer func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "daemon.log"))
			t.Logf("daemon log:\n%s", log)
		}
	}()

	cmd := start()
	testmedia.WriteSample(t, filepath.Join(d.mediaRoot, "s.mp4"), testmedia.SampleOptions{Width: 320, Height: 180, Duration: 2 * time.Second})
	d.create(t, `{"source":"s.mp4","ladder":"test","id":"vod"}`)
	d.waitFor(t, "vod", time.Minute, "finish", func(v job.View) bool { return v.State == job.Finished })
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 320, Height: 180, FPS: 25})
	v := d.create(t, `{"source":"`+src.URL+`","ladder":"test","id":"cam"}`)
	jobDir := filepath.Join(d.out, "cam")
	v = d.waitFor(t, "cam", time.Minute, "segments", func(v job.View) bool { return v.State == job.Running && v.Segments >= 3*len(v.Renditions) })

	for _, how := range []struct {
		name string
		sig  syscall.Signal
	}{{"kill -9", syscall.SIGKILL}, {"SIGTERM", syscall.SIGTERM}} {
		t.Run(how.name, func(t *testing.T) {
			before := d.job(t, "cam")
			if err := cmd.Process.Signal(how.sig); err != nil {
				t.Fatal(err)
			}
			_, _ = cmd.Process.Wait()
			// Pdeathsig (or the graceful stop) ends ffmpeg with the daemon.
			deadline := time.Now().Add(15 * time.Second)
			for len(processesWriting(t, jobDir)) > 0 {
				if time.Now().After(deadline) {
					t.Fatalf("ffmpeg outlived the daemon: %v", processesWriting(t, jobDir))
				}
				time.Sleep(100 * time.Millisecond)
			}
			began := time.Now()
			cmd = start()
			after := d.waitFor(t, "cam", 45*time.Second, "resumed segments", func(v job.View) bool {
				return v.State == job.Running && v.Segments >= 2*len(v.Renditions)
			})
			t.Logf("%s: live job back with new segments %v after the restart", how.name, time.Since(began).Round(100*time.Millisecond))
			if after.Created != before.Created || after.HLS != before.HLS {
				t.Errorf("resumed job is a different job: %+v", after)
			}
			if vod := d.job(t, "vod"); vod.State != job.Finished {
				t.Errorf("finished job after restart: %s", vod.State)
			}
			if pids := processesWriting(t, jobDir); len(pids) != 1 {
				t.Errorf("%d ffmpeg processes write the job folder, want 1: %v", len(pids), pids)
			}
		})
	}

	// One presentation throughout: numbers continue, each restart is marked.
	for name, disc := range checkContinuous(t, checkOutputs(t, jobDir, d.job(t, "cam"))) {
		if disc < 2 {
			t.Errorf("%s: %d discontinuities, want 2 (one per daemon restart)", name, disc)
		}
	}
	checkMPD(t, jobDir)
	if code := d.call(t, http.MethodDelete, "/v1/jobs/cam", "", &v); code != http.StatusOK || v.State != job.Finished {
		t.Errorf("DELETE after restarts: %d %s", code, v.State)
	}
}
