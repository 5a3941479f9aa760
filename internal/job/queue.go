package job

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/transcoderd/transcoderd/internal/cpucap"
)

// queue holds the live jobs that asked to wait for room under the CPU cap
// (Request.Queue) rather than be refused. It is first come, first served: while a job
// waits, a newer one is not admitted past it even if it would fit. It looks for room
// when the runners tell it of some: a job's cores given back when its runner returns
// (released), a running job's use measured every 5 s (measured), which can free part
// of its estimate. It is the runners' side of the cap (the cores interface).
type queue struct {
	cap    *cpucap.Cap
	launch func(*Job, startState) // starts a job admitted from the queue, under mu

	mu      sync.Mutex
	waiting []*Job // oldest first
	paused  bool   // while Restore brings back the jobs that held cores
	closed  bool   // the manager is closed: nothing starts any more
}

func newQueue(cap *cpucap.Cap, launch func(*Job, startState)) *queue {
	return &queue{cap: cap, launch: launch}
}

// admitLocked reserves cost cores for the job called id under the CPU cap, unless
// queued jobs wait before it. q.mu is held.
func (q *queue) admitLocked(id string, cost float64) error {
	if n := len(q.waiting); n > 0 {
		return fmt.Errorf("%w: %d live job(s) are queued before this one, waiting for room", cpucap.ErrOverCapacity, n)
	}
	return q.cap.Admit(id, cost)
}

// add puts j at the end of the queue.
func (q *queue) add(j *Job) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.waiting = append(q.waiting, j)
}

// remove takes j out of the queue, and reports whether it was there.
func (q *queue) remove(j *Job) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.Index(q.waiting, j)
	if i < 0 {
		return false
	}
	q.waiting = slices.Delete(q.waiting, i, i+1)
	return true
}

// admitWaiting starts the queued jobs that fit now, oldest first, and stops at the
// first that does not.
func (q *queue) admitWaiting() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.paused {
		return
	}
	for len(q.waiting) > 0 {
		j := q.waiting[0]
		if err := q.cap.Admit(j.id, j.cost); err != nil {
			j.update(func(v *View) { v.Waiting = err.Error() })
			for i, k := range q.waiting[1:] {
				k.update(func(v *View) {
					v.Waiting = fmt.Sprintf("%d live job(s) are queued before this one, waiting for room", i+1)
				})
			}
			return
		}
		q.waiting = q.waiting[1:]
		j.update(func(v *View) { v.Waiting = "" })
		j.event(Event{Type: "admitted", Message: fmt.Sprintf("room for %.2f cores under the CPU cap: starting", j.cost)})
		j.setState(Starting)
		// Probed again: the source may have changed while the job waited.
		q.launch(j, startState{})
	}
}

// released gives a job's cores back, and the queue a chance at them: its runner has
// returned.
func (q *queue) released(id string) {
	q.cap.Release(id)
	q.admitWaiting()
}

// measured replaces a running live job's reservation with what it used; the queue
// may start a job in what that freed.
func (q *queue) measured(id string, used float64) {
	q.cap.Observe(id, used)
	q.admitWaiting()
}

// recost replaces a running live job's reservation with cores, the cost of the
// encoders it runs on now: the GPU service placed its rungs otherwise than when it was
// admitted (sessions taken meanwhile, another plan), or a hardware encoder failed and
// its rungs moved to x264. The job runs on whether that fits or not: it was admitted,
// and stopping a live stream because its GPU failed would serve nobody. It is over
// the cap then, which the error says: live jobs after it are refused (or queue) until
// room frees up, its measured use replaces the estimate once it runs, and if the box
// runs short of CPU a ladder with video.shed_top_rung sheds its top rung. A lower cost
// gives the queue its chance.
func (q *queue) recost(id string, cores float64) error {
	err := q.cap.Reserve(id, cores)
	q.admitWaiting()
	return err
}

// grow reserves more cores for a running job (a shed rung back), unless live jobs
// wait: they go first.
func (q *queue) grow(id string, more float64) error {
	q.mu.Lock()
	queued := len(q.waiting) > 0
	q.mu.Unlock()
	if queued {
		return errors.New("live jobs are queued")
	}
	return q.cap.Grow(id, more)
}

// pause holds the queue while Restore brings back the jobs that held cores.
func (q *queue) pause() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.paused = true
}

// resume orders the queue by creation (restored jobs come back in any order) and
// starts what fits.
func (q *queue) resume() {
	q.mu.Lock()
	slices.SortFunc(q.waiting, func(a, b *Job) int {
		if c := a.view.Created.Compare(b.view.Created); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	q.paused = false
	q.mu.Unlock()
	q.admitWaiting()
}

// close starts nothing any more: the manager is closing.
func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
}
