package gpu

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/transcoderd/transcoderd/internal/encoder"
	"github.com/transcoderd/transcoderd/internal/ladder"
)

// Fallback applies failure f to admission a of job id and returns the admission
// to run next. It moves f.Rungs to x264 (listed in Moved with ffmpeg's line)
// and frees their sessions; when l.Fallback is "none" and rungs would move, it
// fails with ErrHardwareFailed and ffmpeg's line instead. A session limit hit at
// runtime lowers the pool's capacity to what was open, until the next probe.
func (s *Service) Fallback(id string, l *ladder.Ladder, a Admission, f Failure) (Admission, error) {
	if l == nil {
		return a, errors.New("fallback: no ladder")
	}
	if len(f.Rungs) > 0 && l.Fallback == "none" {
		return a, fmt.Errorf("ladder %q says fallback: none: rungs %s: %s: %w", l.Name, strings.Join(f.Rungs, ", "), f.Line, ErrHardwareFailed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := a
	next.Plan.Video = slices.Clone(a.Plan.Video)
	next.Moved = slices.Clone(a.Moved)
	next.Notes = slices.Clone(a.Notes)
	limited := s.moveLocked(id, l, &next, f)
	s.learnLocked(limited, f)
	next.shed(f)
	return next, nil
}

// moveLocked moves the hardware rungs of f.Rungs in a to x264 and frees their
// sessions. It returns the pools that ran out of sessions at runtime.
func (s *Service) moveLocked(id string, l *ladder.Ladder, a *Admission, f Failure) (limited []string) {
	hs := s.held[id]
	for i := range a.Plan.Video {
		v := &a.Plan.Video[i]
		if !slices.Contains(f.Rungs, v.Name) || !encoder.IsHardware(v.Encoder) {
			continue
		}
		a.Moved = append(a.Moved, Move{Rung: v.Name, Wanted: Wanted(l, v.Name), From: v.Encoder, To: encoder.X264,
			Reason: v.Encoder + " failed (" + f.Kind + "): " + f.Line})
		v.Encoder = encoder.X264
		for j, h := range hs {
			if h.rung == v.Name {
				if f.Kind == kindSessionLimit && !slices.Contains(limited, h.pool) {
					limited = append(limited, h.pool)
				}
				hs = slices.Delete(hs, j, j+1)
				break
			}
		}
	}
	if len(hs) == 0 {
		delete(s.held, id)
	} else {
		s.held[id] = hs
	}
	return limited
}

// learnLocked lowers each pool that hit the session limit at runtime to the
// sessions open now, until the next probe.
func (s *Service) learnLocked(limited []string, f Failure) {
	for _, key := range limited {
		if p := s.pools[key]; p != nil {
			used := s.usedLocked(key)
			p.capacity = used
			p.learned = fmt.Sprintf("a job hit the session limit at runtime with %d open: %s", used, f.Line)
			s.log.Warn().Str("pool", key).Int("capacity", used).Str("ffmpeg", f.Line).Msg("encoder session limit lower than probed")
		}
	}
}
