package ffmpeg

import (
	"bufio"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Progress is one block of ffmpeg's -progress output.
type Progress struct {
	Frame      int64         // frames encoded so far (of the first video output)
	FPS        float64       // encoding frames per second
	Speed      float64       // media seconds encoded per wall-clock second; 0 when N/A
	OutTime    time.Duration // media time encoded so far
	Bitrate    float64       // kbit/s of the first output; 0 when N/A
	DupFrames  int64
	DropFrames int64
	TotalSize  int64 // bytes written to the first output; 0 when N/A
	End        bool  // the last block: ffmpeg is finishing
}

// ReadProgress reads ffmpeg -progress output from r and calls fn once per block
// (each block ends with progress=continue or progress=end) until r ends. Values
// that are N/A or do not parse read as zero; unknown keys are ignored. A block
// cut short by the end of r is dropped. It returns r's read error, if any.
func ReadProgress(r io.Reader, fn func(Progress)) error {
	sc := bufio.NewScanner(r)
	var (
		p                  Progress
		us, ms, clock      string
		haveUS, haveMS, ok bool
	)
	for sc.Scan() {
		var key, val string
		key, val, ok = strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "frame":
			p.Frame = parseInt(val)
		case "fps":
			p.FPS = parseFloat(val)
		case "bitrate":
			p.Bitrate = parseFloat(strings.TrimSuffix(val, "kbits/s"))
		case "total_size":
			p.TotalSize = parseInt(val)
		case "out_time_us":
			us, haveUS = val, true
		case "out_time_ms":
			// Despite its name, ffmpeg writes microseconds here too.
			ms, haveMS = val, true
		case "out_time":
			clock = val
		case "dup_frames":
			p.DupFrames = parseInt(val)
		case "drop_frames":
			p.DropFrames = parseInt(val)
		case "speed":
			p.Speed = parseFloat(strings.TrimSuffix(val, "x"))
		case "progress":
			switch {
			case haveUS:
				p.OutTime = micros(parseInt(us))
			case haveMS:
				p.OutTime = micros(parseInt(ms))
			default:
				p.OutTime = parseClock(clock)
			}
			p.OutTime = max(p.OutTime, 0) // negative before the first frame
			p.End = val == "end"
			fn(p)
			p, us, ms, clock, haveUS, haveMS = Progress{}, "", "", "", false, false
		}
	}
	return sc.Err()
}

func parseInt(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func parseFloat(s string) float64 {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// micros converts microseconds to a Duration, reading values out of range
// (ffmpeg prints INT64_MIN-ish numbers before the first frame) as 0.
func micros(n int64) time.Duration {
	if n > math.MaxInt64/1000 || n < -math.MaxInt64/1000 {
		return 0
	}
	return time.Duration(n) * time.Microsecond
}

// parseClock reads HH:MM:SS.ffffff; anything else is 0.
func parseClock(s string) time.Duration {
	neg := strings.HasPrefix(s, "-")
	parts := strings.Split(strings.TrimPrefix(s, "-"), ":")
	if len(parts) != 3 {
		return 0
	}
	h, err1 := strconv.ParseUint(parts[0], 10, 32)
	m, err2 := strconv.ParseUint(parts[1], 10, 32)
	sec, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil || sec < 0 || sec >= 60 {
		return 0
	}
	d := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec*float64(time.Second))
	if neg {
		return -d
	}
	return d
}
