package job

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/source"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// feedInput is an Input that feeds ffmpeg another file than the job's source, with a
// pipe as the child's descriptor 3: what the runner runs is what the input says.
type feedInput struct {
	Input
	feed  source.Source
	pipe  *os.File // the read end, handed to each run
	opens atomic.Int32
}

func (in *feedInput) Open(context.Context) (Feed, error) {
	in.opens.Add(1)
	return Feed{Source: in.feed, Files: []*os.File{in.pipe}}, nil
}

// TestInputFeedsFFmpeg checks that the runner runs ffmpeg on what its Input opens, not
// on the job's source: the file it names, the files it hands the child (descriptor 3
// of the running ffmpeg is the input's pipe), which the runner closes once ffmpeg has
// started.
func TestInputFeedsFFmpeg(t *testing.T) {
	testmedia.RequireFFmpeg(t)
	media := t.TempDir()
	testmedia.WriteSample(t, filepath.Join(media, "asked.mp4"), testmedia.SampleOptions{Width: 320, Height: 180, Duration: 2 * time.Second})
	testmedia.WriteSample(t, filepath.Join(media, "fed.mp4"), testmedia.SampleOptions{Width: 320, Height: 180, Duration: 8 * time.Second})
	fed, err := source.Parse("fed.mp4", media)
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	m := testManager(t, Config{MediaRoot: media})
	in := &feedInput{feed: fed, pipe: r}
	m.inputOf = func(src source.Source) Input {
		in.Input = inputFor(src, m.cfg.FFprobe) // probed as asked
		return in
	}
	j, err := m.Create(context.Background(), Request{Source: "asked.mp4", Ladder: "test", ID: "fed"})
	if err != nil {
		t.Fatal(err)
	}
	pipe := fdLink(t, os.Getpid(), int(w.Fd()))
	inherited := ""
	for deadline := time.Now().Add(time.Minute); inherited == "" && !j.View().State.Ended(); time.Sleep(5 * time.Millisecond) {
		if pid := j.PID(); pid != 0 {
			inherited, _ = os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/3")
		}
		if time.Now().After(deadline) {
			t.Fatalf("no running ffmpeg: %+v", j.View())
		}
	}
	<-j.Done()
	v := j.View()
	if v.State != Finished || in.opens.Load() != 1 {
		t.Fatalf("job %s, %d opens of the input; want finished, 1: %+v", v.State, in.opens.Load(), v)
	}
	if argv := strings.Join(v.FFmpeg, " "); !strings.Contains(argv, "fed.mp4") || strings.Contains(argv, "asked.mp4") {
		t.Errorf("ffmpeg ran on %s, want the fed file", argv)
	}
	if v.Segments < 8 { // 8 s of 1 s segments, video and audio: the fed file, not the 2 s asked
		t.Errorf("%d segments, want those of the 8 s fed file", v.Segments)
	}
	if inherited != pipe {
		t.Errorf("ffmpeg's descriptor 3 is %q, want the input's pipe %q", inherited, pipe)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("the pipe's read end is still open after the run: write %v", err)
	}
}

// fdLink is what descriptor fd of process pid names ("pipe:[1234]").
func fdLink(t *testing.T, pid, fd int) string {
	t.Helper()
	l, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + strconv.Itoa(fd))
	if err != nil {
		t.Fatal(err)
	}
	return l
}
