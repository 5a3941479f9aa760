package encoder

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/transcoderd/transcoderd/internal/ladder"
)

// Rungs returns the video part of one ffmpeg run that encodes rungs: the
// -filter_complex graph (see FilterGraph) and, per rung in order, the options
// of its output: the -map of its branch of the graph, then its backend's
// VideoArgs. preset, gop and segSeconds are the plan's (see Encoder). Every
// problem is reported at once.
func Rungs(fps string, rungs []ladder.PlannedVideo, hw Hardware, preset string, gop int, segSeconds float64) (graph string, outputs [][]string, err error) {
	graph, err = FilterGraph(fps, rungs, hw)
	errs := []error{err}
	for i, v := range rungs {
		b, err := Resolve(v.Encoder)
		if err != nil {
			continue // FilterGraph has reported it
		}
		args, err := b.VideoArgs(v, preset, gop, segSeconds)
		errs = append(errs, err)
		outputs = append(outputs, append([]string{"-map", "[v" + strconv.Itoa(i) + "]"}, args...))
	}
	if err := errors.Join(errs...); err != nil {
		return "", nil, err
	}
	return graph, outputs, nil
}

// FilterGraph returns the -filter_complex graph of a plan: the first video stream
// at frame rate fps (written as ffmpeg takes it, e.g. "30000/1001"), brought onto
// hw's device when hw is set, split once per rung, each branch made ready for its
// rung's encoder by that backend's Scale and labelled [v0], [v1]...
func FilterGraph(fps string, rungs []ladder.PlannedVideo, hw Hardware) (string, error) {
	if err := hw.Validate(); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("[0:v:0]fps=")
	b.WriteString(fps)
	if hw.Type != "" {
		b.WriteString(hw.upload())
	}
	n := len(rungs)
	if n > 1 {
		b.WriteString(",split=" + strconv.Itoa(n))
		for i := range n {
			b.WriteString("[s" + strconv.Itoa(i) + "]")
		}
	}
	var errs []error
	for i, v := range rungs {
		chain, err := rungChain(v, hw)
		if err != nil {
			errs = append(errs, fmt.Errorf("rung %q: %w", v.Name, err))
			continue
		}
		if n > 1 {
			b.WriteString(";[s" + strconv.Itoa(i) + "]")
		} else {
			b.WriteString(",")
		}
		b.WriteString(chain + "[v" + strconv.Itoa(i) + "]")
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	return b.String(), nil
}

// rungChain is the chain of one rung's branch: its backend's Scale.
func rungChain(v ladder.PlannedVideo, hw Hardware) (string, error) {
	b, err := Resolve(v.Encoder)
	if err != nil {
		return "", err
	}
	return b.Scale(v.Width, v.Height, hw)
}

// softwareScale is the chain for an encoder that reads system memory: scale in
// software from software frames, or scale on the device and download the small
// result from hardware frames. pixFmt is the encoder's input format.
func softwareScale(w, h int, hw Hardware, pixFmt string) string {
	if hw.Type == "" {
		return fmt.Sprintf("scale=%d:%d:flags=bicubic,setsar=1,format=%s", w, h, pixFmt)
	}
	return hw.scale(w, h) + ",hwdownload,format=nv12,setsar=1,format=" + pixFmt
}

// hardwareScale is the chain for an encoder that reads frames of type frames: it
// scales on the device and needs the job's frames there.
func hardwareScale(name, frames string, w, h int, hw Hardware) (string, error) {
	if hw.Type != frames {
		have := "no hardware device"
		if hw.Type != "" {
			have = hw.Type + " frames"
		}
		return "", fmt.Errorf("encoder %s needs %s frames but the job has %s: %w", name, frames, have, ErrUnavailable)
	}
	return hw.scale(w, h) + ",setsar=1", nil
}
