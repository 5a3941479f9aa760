package ladder

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// In JSON (the API, and the daemon's store) every duration of this package is a
// number of seconds: "segment_duration": 2, "window": 900, "duration": 12.48. Go
// keeps them as time.Duration; the methods below convert at the edge. Without
// them encoding/json would write nanoseconds.

// seconds is a time.Duration that JSON writes and reads as seconds.
type seconds time.Duration

// MarshalJSON writes the duration as a number of seconds, as short as it can be
// read back exactly.
func (s seconds) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, time.Duration(s).Seconds(), 'f', -1, 64), nil
}

// UnmarshalJSON reads a number of seconds, to the nanosecond.
func (s *seconds) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("a duration is a number of seconds: %w", err)
	}
	ns := math.Round(f * float64(time.Second))
	if ns >= math.MaxInt64 || ns <= math.MinInt64 { // float64(MaxInt64) is 2^63, one past it
		return fmt.Errorf("duration %g s is out of range", f)
	}
	*s = seconds(ns)
	return nil
}

// ladderFields, planFields and sourceFields have the fields of Ladder, Plan and
// SourceInfo without their JSON methods, which call encoding/json on them.
type (
	ladderFields Ladder
	planFields   Plan
	sourceFields SourceInfo
)

// The outer field of the same JSON name takes the place of the embedded one.
type (
	ladderJSON struct {
		*ladderFields
		SegmentDuration seconds `json:"segment_duration"`
		Window          seconds `json:"window"`
		RecordRetention seconds `json:"record_retention,omitempty"`
	}
	planJSON struct {
		*planFields
		SegmentDuration seconds `json:"segment_duration"`
	}
	sourceJSON struct {
		*sourceFields
		Duration seconds `json:"duration,omitempty"`
	}
)

// MarshalJSON writes the ladder with its durations in seconds, and its video
// renditions as [] rather than null when it has none.
func (l Ladder) MarshalJSON() ([]byte, error) {
	if l.Video.Renditions == nil {
		l.Video.Renditions = []Rendition{}
	}
	return json.Marshal(ladderJSON{(*ladderFields)(&l), seconds(l.SegmentDuration), seconds(l.Window), seconds(l.RecordRetention)})
}

// UnmarshalJSON reads a ladder written by MarshalJSON.
func (l *Ladder) UnmarshalJSON(b []byte) error {
	v := ladderJSON{(*ladderFields)(l), seconds(l.SegmentDuration), seconds(l.Window), seconds(l.RecordRetention)} // absent keys keep their value
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	l.SegmentDuration, l.Window = time.Duration(v.SegmentDuration), time.Duration(v.Window)
	l.RecordRetention = time.Duration(v.RecordRetention)
	return nil
}

// MarshalJSON writes the plan with its segment duration in seconds.
func (p Plan) MarshalJSON() ([]byte, error) {
	return json.Marshal(planJSON{(*planFields)(&p), seconds(p.SegmentDuration)})
}

// UnmarshalJSON reads a plan written by MarshalJSON.
func (p *Plan) UnmarshalJSON(b []byte) error {
	v := planJSON{(*planFields)(p), seconds(p.SegmentDuration)}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	p.SegmentDuration = time.Duration(v.SegmentDuration)
	return nil
}

// MarshalJSON writes the probe with the source's duration in seconds.
func (s SourceInfo) MarshalJSON() ([]byte, error) {
	return json.Marshal(sourceJSON{(*sourceFields)(&s), seconds(s.Duration)})
}

// UnmarshalJSON reads a probe written by MarshalJSON.
func (s *SourceInfo) UnmarshalJSON(b []byte) error {
	v := sourceJSON{(*sourceFields)(s), seconds(s.Duration)}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	s.Duration = time.Duration(v.Duration)
	return nil
}
