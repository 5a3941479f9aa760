package testmedia

import (
	"fmt"
	"strconv"
	"time"
)

// Sync content: a white flash and a 1 kHz beep every SyncPeriod, made at the same
// instants, so that a test can tell from the output how far audio and video are apart.
// The audio stream starts AudioOffset after the video stream (before it when negative),
// as with cameras and encoders whose audio and video do not begin together; the flashes
// and beeps stay at the same instants of the presentation, multiples of SyncPeriod from
// the start of the stream that begins first. The period is twice the largest offset a
// test should use (1 s), so that a flash is never as near to another beep as to its own.
const (
	// SyncPeriod is the time from one flash (and beep) to the next.
	SyncPeriod = 2 * time.Second
	// BeepLength is how long each beep lasts.
	BeepLength = 50 * time.Millisecond
	// BeepHz is the beep's frequency.
	BeepHz = 1000
)

// syncInputs returns ffmpeg's input arguments (after each input's pace, if any) of the
// sync content: video of w x h at fps, then 48 kHz mono audio, each lasting secs ("" for
// endless), the later one offset by the start offset.
func syncInputs(pace []string, w, h, fps int, offset time.Duration, secs string) []string {
	var vOff, aOff float64 // where each stream starts, in seconds
	if offset > 0 {
		aOff = offset.Seconds()
	} else {
		vOff = -offset.Seconds()
	}
	dur := func(extra float64) string {
		if secs == "" {
			return ""
		}
		d, _ := strconv.ParseFloat(secs, 64)
		return ":d=" + strconv.FormatFloat(d-extra, 'f', -1, 64)
	}
	// Each stream's own clock t starts at 0; its instant of the presentation is t + its
	// start. A flash lights one frame, the one that starts within half a frame after the
	// instant.
	period := fmtSec(SyncPeriod.Seconds())
	video := fmt.Sprintf("color=c=black:s=%dx%d:r=%d%s,drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(t+%s\\,%s)\\,%s)'",
		w, h, fps, dur(vOff), fmtSec(vOff), period, fmtSec(0.5/float64(fps)))
	audio := fmt.Sprintf("aevalsrc='if(lt(mod(t+%s\\,%s)\\,%s)\\,0.8*sin(2*PI*%d*t)\\,0)':s=48000%s",
		fmtSec(aOff), period, fmtSec(BeepLength.Seconds()), BeepHz, dur(aOff))
	var args []string
	args = append(args, pace...)
	if vOff > 0 {
		args = append(args, "-itsoffset", fmtSec(vOff))
	}
	args = append(args, "-f", "lavfi", "-i", video)
	args = append(args, pace...)
	if aOff > 0 {
		args = append(args, "-itsoffset", fmtSec(aOff))
	}
	return append(args, "-f", "lavfi", "-i", audio)
}

func fmtSec(s float64) string { return strconv.FormatFloat(s, 'f', -1, 64) }
