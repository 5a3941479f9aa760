package job

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestFileJobYields checks that every thread of a file job's ffmpeg runs at nice 19, so
// that within the CPU cap file jobs use what live jobs leave.
func TestFileJobYields(t *testing.T) {
	testmedia.RequireFFmpeg(t)
	media := t.TempDir()
	testmedia.WriteSample(t, filepath.Join(media, "clip.mp4"), testmedia.SampleOptions{Width: 1280, Height: 720, Duration: 20 * time.Second})
	m := testManager(t, Config{MediaRoot: media})
	j, err := m.Create(context.Background(), Request{Source: "clip.mp4", Ladder: "test", ID: "vod"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Once x264 runs, ffmpeg has its encoder threads.
		if pid := j.PID(); pid != 0 && j.View().Progress.Frame > 0 {
			tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/stat")
			if len(tasks) > 1 {
				for _, task := range tasks {
					if nice := niceOf(t, task); nice != fileNice {
						t.Errorf("%s: nice %d, want %d", task, nice, fileNice)
					}
				}
				t.Logf("%d threads of ffmpeg %d checked", len(tasks), pid)
				return
			}
		}
		if time.Now().After(deadline) || j.View().State.Ended() {
			t.Fatalf("no running ffmpeg with threads: %+v", j.View())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// niceOf reads the nice value (field 19) of a /proc/<pid>/task/<tid>/stat file.
func niceOf(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The command name (field 2) is in parentheses and may hold spaces: count after it.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	n, err := strconv.Atoi(f[16]) // fields 3.. start at index 0
	if err != nil {
		t.Fatal(err)
	}
	return n
}
