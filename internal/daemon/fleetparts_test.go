package daemon

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/store"
)

// partsStore is a checkpoint's parts as stored: what flush writes, by name.
type partsStore map[string][]manifest.Segment

// flushParts does what fleetStore.flush does to the parts, into ps, and returns the
// bytes it wrote.
func flushParts(t *testing.T, p *segParts, idx map[string][]manifest.Segment, ps partsStore) int {
	t.Helper()
	if p.base {
		p.rebuild(idx)
	}
	n := 0
	for i, w := range p.pending() {
		if w.segs == nil {
			delete(ps, w.name)
			p.done(w, 0)
			continue
		}
		b, _ := json.Marshal(w.segs)
		n += len(b)
		ps[w.name] = w.segs
		p.done(w, uint64(i+1))
	}
	return n
}

func clone(idx map[string][]manifest.Segment) map[string][]manifest.Segment {
	out := map[string][]manifest.Segment{}
	for k, v := range idx {
		if len(v) > 0 {
			out[k] = append([]manifest.Segment(nil), v...)
		}
	}
	return out
}

// TestSegParts: a live job's index, checkpointed every second in parts, reads back
// exactly as the store holds it after every flush (segments added, the window's old
// ones removed, a late change to an old part, a lost revision), and what one flush
// writes does not grow with the window: a 2-hour window costs what a 1-minute one does.
func TestSegParts(t *testing.T) {
	perFlush := map[int]int{}
	for _, window := range []int{60, 3600} {
		t.Run(fmt.Sprintf("window %ds", window), func(t *testing.T) {
			p, ps := newSegParts(3), partsStore{}
			idx := map[string][]manifest.Segment{} // the store's index
			t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
			var last int
			for n := uint64(0); n < uint64(window)+300; n++ {
				var changes []store.SegmentChange
				for _, tr := range []string{"360p", "aac_en"} {
					seg := manifest.Segment{Number: n, Start: n * 90000, Duration: 90000, Size: 12345, ProgramDate: t0.Add(time.Duration(n) * time.Second), Run: 30000001764979200}
					c := store.SegmentChange{Track: tr, Added: []manifest.Segment{seg}}
					idx[tr] = append(idx[tr], seg)
					if len(idx[tr]) > window {
						c.Removed = []uint64{idx[tr][0].Number}
						idx[tr] = idx[tr][1:]
					}
					changes = append(changes, c)
				}
				p.apply(changes)
				last = flushParts(t, p, idx, ps)
				if n%97 == 0 || n == uint64(window)+299 {
					if got := fromParts(ps, p.gone()); !reflect.DeepEqual(got, clone(idx)) {
						t.Fatalf("after segment %d: parts read back %d tracks (%d, %d segments), the store holds %d, %d",
							n, len(got), len(got["360p"]), len(got["aac_en"]), len(idx["360p"]), len(idx["aac_en"]))
					}
				}
			}
			perFlush[window] = last
			if len(ps) > 2*(window/partSpan+2) {
				t.Errorf("%d parts stored for %d segments a track: old parts are not deleted", len(ps), window)
			}

			// A change to a closed part (a late segment of an old number) is followed
			// by rewriting the parts from the store.
			old := idx["360p"][3]
			old.Size = 999
			idx["360p"][3] = old
			p.apply([]store.SegmentChange{{Track: "360p", Added: []manifest.Segment{old}}})
			if !p.base {
				t.Fatal("a change to a closed part did not ask for a rewrite")
			}
			flushParts(t, p, idx, ps)
			if got := fromParts(ps, p.gone()); !reflect.DeepEqual(got, clone(idx)) {
				t.Fatal("after a rewrite, the parts do not read back as the store")
			}
		})
	}
	t.Logf("bytes written by one flush: window 60 s %d, window 3600 s %d", perFlush[60], perFlush[3600])
	if perFlush[3600] > 2*perFlush[60]+1024 {
		t.Errorf("one flush writes %d bytes with a 2-hour window, %d with a minute: it grows with the window", perFlush[3600], perFlush[60])
	}
}
