package job

import (
	"fmt"
	"slices"

	"github.com/transcoderd/transcoderd/internal/cpucap"
)

// The queue of live jobs that asked to wait for room under the CPU cap (Request.Queue)
// rather than be refused. It is first come, first served: while a job waits, a newer
// one is not admitted past it even if it would fit. Room is looked for whenever a job
// gives its cores back and whenever a running job's use is measured (every 5 s),
// which can free part of its estimate.

// admitLocked reserves cost cores for the job called id under the CPU cap, unless
// queued jobs wait before it. m.mu is held.
func (m *Manager) admitLocked(id string, cost float64) error {
	if n := len(m.queue); n > 0 {
		return fmt.Errorf("%w: %d live job(s) are queued before this one, waiting for room", cpucap.ErrOverCapacity, n)
	}
	return m.cfg.CPU.Admit(id, cost)
}

// admitQueued starts the queued jobs that fit now, oldest first, and stops at the first
// that does not.
func (m *Manager) admitQueued() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.restoring {
		return
	}
	for len(m.queue) > 0 {
		j := m.queue[0]
		if err := m.cfg.CPU.Admit(j.id, j.cost); err != nil {
			j.update(func(v *View) { v.Waiting = err.Error() })
			for i, k := range m.queue[1:] {
				k.update(func(v *View) {
					v.Waiting = fmt.Sprintf("%d live job(s) are queued before this one, waiting for room", i+1)
				})
			}
			return
		}
		m.queue = m.queue[1:]
		j.update(func(v *View) { v.Waiting = "" })
		j.event(Event{Type: "admitted", Message: fmt.Sprintf("room for %.2f cores under the CPU cap: starting", j.cost)})
		j.setState(Starting)
		// Probed again: the source may have changed while the job waited.
		m.launchLocked(j, startState{})
	}
}

// queued reports how many live jobs wait for room.
func (m *Manager) queued() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.queue)
}

// unqueue ends j if it is waiting in the queue, and reports whether it was.
func (m *Manager) unqueue(j *Job) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := slices.Index(m.queue, j)
	if i < 0 {
		return false
	}
	m.queue = slices.Delete(m.queue, i, i+1)
	j.event(Event{Type: "state", Message: "removed from the queue before it started"})
	j.update(func(v *View) { v.Waiting = "" })
	j.setState(Finished)
	j.cancel()
	close(j.done)
	return true
}
