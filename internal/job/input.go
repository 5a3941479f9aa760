package job

import (
	"context"
	"os"

	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/source"
)

// Input is where a job's ffmpeg reads its source. The runner asks it before each run
// of ffmpeg and does not care what it is: today a URL or a file (urlInput; rtspInput
// picks an RTSP source's transport per run); push ingest
// will hand ffmpeg a pipe from the daemon's own hub, and the fleet a job moved from
// another box. inputFor picks one for a source.
type Input interface {
	// Probe tells what the source holds; ctx bounds it.
	Probe(ctx context.Context) (ladder.SourceInfo, error)
	// Open readies what the next run of ffmpeg reads.
	Open(ctx context.Context) (Feed, error)
}

// Feed is what one run of ffmpeg reads: its input as the source package describes one
// (the URL or path ffmpeg opens, how it reaches it, how the API shows it; pipe:3 for a
// pipe), and the files the child inherits as its descriptors 3, 4... The runner closes
// the files once ffmpeg has started: the child holds its own copies.
type Feed struct {
	Source source.Source
	Files  []*os.File
}

// inputFor is where a job's ffmpeg reads src: the one place a kind of source picks its
// Input. ffprobe is the path of ffprobe.
func inputFor(src source.Source, ffprobe string) Input {
	switch src.Kind {
	case source.RTSP:
		return newRTSPInput(src, ffprobe)
	case source.Push:
		return &pushInput{src: src, ffprobe: ffprobe}
	}
	return urlInput{src: src, ffprobe: ffprobe}
}

// urlInput is a source ffmpeg opens itself: a network URL or a file.
type urlInput struct {
	src     source.Source
	ffprobe string
}

func (in urlInput) Probe(ctx context.Context) (ladder.SourceInfo, error) {
	return ffmpeg.Probe(ctx, in.ffprobe, in.src.URL, in.src.Kind)
}

func (in urlInput) Open(context.Context) (Feed, error) { return Feed{Source: in.src}, nil }
