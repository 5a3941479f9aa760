// Command bench measures what the one-process ladder costs and saves. It encodes a
// generated 20 s 1080p30 source with a ladder (default: profiles/default.yaml) three ways
// and prints the wall time of each, from one run:
//
//  1. as a transcoderd VOD job (POST to a daemon running in this process, until finished);
//  2. the job's own ffmpeg argv, run by hand;
//  3. the naive way: one ffmpeg per rendition, all at once, each decoding the source.
//
// Usage: go run ./scripts/bench [-ladder default] [-seconds 20] [-keep]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/daemon"
	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/ladder"
)

func main() {
	ladderName := flag.String("ladder", "default", "ladder from profiles/")
	seconds := flag.Int("seconds", 20, "length of the generated 1080p30 source")
	keep := flag.Bool("keep", false, "keep the work folder")
	flag.Parse()
	if err := run(*ladderName, *seconds, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ladderName string, seconds int, keep bool) error {
	work, err := os.MkdirTemp("", "transcoderd-bench-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(work)
	}
	media := filepath.Join(work, "media")
	if err := os.MkdirAll(media, 0o755); err != nil {
		return err
	}
	sample := filepath.Join(media, "sample.mp4")
	fmt.Printf("generating %d s of 1080p30 (testsrc2 + noise, sine) ...\n", seconds)
	if err := sh("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30,noise=alls=20:allf=t+u,format=yuv420p",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", fmt.Sprint(seconds),
		"-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-g", "60", "-c:a", "aac", "-b:a", "192k", sample); err != nil {
		return err
	}
	profiles, err := filepath.Abs("profiles")
	if err != nil {
		return err
	}

	// 1. As a job.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Config{
			Listen: "127.0.0.1:0", Output: filepath.Join(work, "out"), Profiles: profiles,
			Data: filepath.Join(work, "data"), MediaRoot: media, FFmpeg: "ffmpeg", FFprobe: "ffprobe",
		}, zerolog.Nop(), func(a string) { addr <- a })
	}()
	var api string
	select {
	case a := <-addr:
		api = "http://" + a
	case err := <-done:
		return fmt.Errorf("daemon: %w", err)
	}
	began := time.Now()
	v, err := post(api, fmt.Sprintf(`{"source":"sample.mp4","ladder":%q,"id":"bench"}`, ladderName))
	if err != nil {
		return err
	}
	for !v.State.Ended() {
		time.Sleep(50 * time.Millisecond)
		if v, err = get(api + "/v1/jobs/bench"); err != nil {
			return err
		}
	}
	jobWall := time.Since(began)
	if v.State != job.Finished {
		return fmt.Errorf("job %s: %s", v.State, v.Error)
	}
	cancel()
	<-done

	// 2. The same argv by hand, into a fresh folder.
	byHand := filepath.Join(work, "byhand")
	argv := make([]string, 0, len(v.FFmpeg))
	jobDir := filepath.Join(work, "out", "bench")
	for _, a := range v.FFmpeg[1:] {
		argv = append(argv, strings.ReplaceAll(a, jobDir, byHand))
	}
	for _, r := range v.Renditions {
		if err := os.MkdirAll(filepath.Join(byHand, r.Name), 0o755); err != nil {
			return err
		}
	}
	began = time.Now()
	if err := sh("ffmpeg", argv...); err != nil {
		return err
	}
	handWall := time.Since(began)

	// 3. One ffmpeg per rendition, all at once.
	l, err := ladder.Load(filepath.Join(profiles, ladderName+".yaml"))
	if err != nil {
		return err
	}
	plan, err := l.Plan(*v.Input)
	if err != nil {
		return err
	}
	var runs [][]string
	for _, rung := range plan.Video {
		p := plan
		p.Video, p.Audio, p.AudioOnly = []ladder.PlannedVideo{rung}, nil, false
		runs = append(runs, mustArgs(sample, p, l, filepath.Join(work, "naive-"+rung.Name)))
	}
	for _, a := range plan.Audio {
		p := plan
		p.Video, p.Audio = nil, []ladder.Audio{a}
		runs = append(runs, mustArgs(sample, p, l, filepath.Join(work, "naive-"+a.Name)))
	}
	began = time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(runs))
	for i, argv := range runs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = sh("ffmpeg", argv...) }()
	}
	wg.Wait()
	naiveWall := time.Since(began)
	for _, err := range errs {
		if err != nil {
			return err
		}
	}

	fmt.Printf("\nladder %s, %d s of 1080p30, %d renditions, %d cores\n", ladderName, seconds, len(v.Renditions), numCPU())
	fmt.Printf("%-44s %8.2f s\n", "transcoderd VOD job (POST to finished)", jobWall.Seconds())
	fmt.Printf("%-44s %8.2f s\n", "same ffmpeg argv by hand", handWall.Seconds())
	fmt.Printf("%-44s %8.2f s\n", "one ffmpeg per rendition, in parallel", naiveWall.Seconds())
	fmt.Printf("job / by hand: %.3fx (target <= 1.03)   naive / job: %.2fx (target >= 1.8)\n",
		jobWall.Seconds()/handWall.Seconds(), naiveWall.Seconds()/jobWall.Seconds())
	return nil
}

func mustArgs(src string, p ladder.Plan, l *ladder.Ladder, dir string) []string {
	argv, err := ffmpeg.BuildArgs(ffmpeg.Job{Source: src, Kind: ffmpeg.File, Plan: p, Preset: l.Video.Preset, Dir: dir})
	if err != nil {
		panic(err) // the plan came from a ladder that validated
	}
	for _, d := range ffmpeg.OutputDirs(ffmpeg.Job{Plan: p, Dir: dir}) {
		_ = os.MkdirAll(d, 0o755)
	}
	return argv
}

func sh(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, stderr.String())
	}
	return nil
}

func post(api, body string) (job.View, error) {
	res, err := http.Post(api+"/v1/jobs", "application/json", strings.NewReader(body))
	if err != nil {
		return job.View{}, err
	}
	return decode(res)
}

func get(url string) (job.View, error) {
	res, err := http.Get(url)
	if err != nil {
		return job.View{}, err
	}
	return decode(res)
}

func decode(res *http.Response) (job.View, error) {
	defer res.Body.Close()
	var v job.View
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		return v, fmt.Errorf("%s: %s", res.Status, data)
	}
	return v, json.Unmarshal(data, &v)
}

func numCPU() int {
	out, err := exec.Command("nproc").Output()
	if err != nil {
		return 0
	}
	var n int
	fmt.Sscan(string(out), &n)
	return n
}
