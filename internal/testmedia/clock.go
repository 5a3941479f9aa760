package testmedia

import (
	"fmt"
	"image"
	"image/color"
	"time"
)

// The burnt-in clock: a live source with SourceOptions.Clock set writes, into the top
// of every frame, the wall-clock time at which ffmpeg made that frame, so that a player
// page can read it back off the displayed frame with a canvas and compute glass-to-glass
// latency as now minus that time. No OCR: the time is ClockBits binary digits, each a
// large block that survives scaling to the smallest rung and x264 at a low bitrate.
//
// Layout, in fractions of the frame so that every rung has it: the top 2/9 of the
// height is a strip of ClockBits columns (most significant bit on the left), each
// 1/ClockBits of the width. Its upper half (row A) is white for a 1 and black for a 0;
// its lower half (row B) is the inverse. A reader compares A with B in each column, and
// refuses a frame where any column does not clearly differ (a frame being switched, or
// a strip smeared by the encoder), so a misread becomes a missing sample, never a wrong
// one. web/test/clock.js is the same reader for the browser.
//
// The value is the wall-clock time in ClockUnit steps modulo 2^ClockBits (10 ms steps
// wrap after about 11 minutes): a latency is (now - value) modulo the wrap, which is
// right for any latency under the wrap.
const (
	ClockBits = 16
	ClockUnit = 10 * time.Millisecond
)

// clockWrap is the number of distinct clock values.
const clockWrap = 1 << ClockBits

// clockFilter is the -filter_complex graph that burns the clock into input 0's video
// (w x h) and labels the result [v]. ffmpeg stamps each frame with its wall-clock time
// (RTCTIME, in milliseconds after settb) as it comes out of the source, paced by -re;
// a 16x2 picture takes the bits from that time (geq's T) and is scaled up to the strip
// with nearest-neighbour, then laid over the frame. The frames are then given back
// their regular timestamps, fps a second.
func clockFilter(w, h, fps int) string {
	stripH := 2 * h / 9 &^ 1
	units := fmt.Sprintf("mod(floor(T*%d)\\,%d)", time.Second/ClockUnit, clockWrap)
	bit := fmt.Sprintf("mod(floor(%s/pow(2\\,%d-X))+Y\\,2)", units, ClockBits-1)
	return fmt.Sprintf("[0:v]format=yuv420p,settb=1/1000,setpts=RTCTIME/1000,split[m][c];"+
		"[c]scale=%d:2,format=gray,geq=lum='16+219*%s',scale=%d:%d:flags=neighbor,format=yuv420p[s];"+
		"[m][s]overlay=0:0,setpts=N*1000/%d[v]", ClockBits, bit, w, stripH, fps)
}

// ReadClock reads the burnt-in clock off a frame: the clock value, and whether every
// column read clearly (row A and row B differ by more than a quarter of the range).
func ReadClock(img image.Image) (value int, ok bool) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	for i := range ClockBits {
		x := b.Min.X + (2*i+1)*w/(2*ClockBits)
		a := meanLuma(img, x, b.Min.Y+h/18, w/(4*ClockBits), h/72)
		c := meanLuma(img, x, b.Min.Y+3*h/18, w/(4*ClockBits), h/72)
		if a-c > -64 && a-c < 64 {
			return 0, false
		}
		value <<= 1
		if a > c {
			value |= 1
		}
	}
	return value, true
}

// meanLuma is the mean luma (0..255) of the box of half-size rx x ry around (x, y).
func meanLuma(img image.Image, x, y, rx, ry int) float64 {
	var sum float64
	var n int
	for yy := y - ry; yy <= y+ry; yy++ {
		for xx := x - rx; xx <= x+rx; xx++ {
			g := color.GrayModel.Convert(img.At(xx, yy)).(color.Gray)
			sum += float64(g.Y)
			n++
		}
	}
	return sum / float64(n)
}

// ClockValue is the clock value of wall-clock time t.
func ClockValue(t time.Time) int {
	return int(t.UnixMilli() / ClockUnit.Milliseconds() % clockWrap)
}

// ClockLatency is how long before now the frame that shows value was made.
func ClockLatency(value int, now time.Time) time.Duration {
	d := (ClockValue(now) - value + clockWrap) % clockWrap
	return time.Duration(d) * ClockUnit
}
