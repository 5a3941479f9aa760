package job

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/source"
	"github.com/transcoderd/transcoderd/internal/store"
)

// TestRestoreStoreFormat2 restores testdata/store-format2/transcoderd.db, a store the
// daemon wrote before the record had a type of its own (its README says how): real
// jobs in every state, live and file, with their segment indexes. Each job is listed as
// that daemon listed it after a restore (views.json, written by its code), what is
// stored again reads back the same, the live jobs that had planned resume from their
// stored plan, timeline and index, and a restore through the manager lists the ended
// jobs unchanged, keeps the queued one queued and resumes the others.
func TestRestoreStoreFormat2(t *testing.T) {
	fixture := filepath.Join("testdata", "store-format2")
	data := t.TempDir()
	db, err := os.ReadFile(filepath.Join(fixture, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, store.FileName), db, 0o600); err != nil { // opening a store writes to it
		t.Fatal(err)
	}
	var golden map[string]json.RawMessage
	if err := json.Unmarshal(readFile(t, filepath.Join(fixture, "views.json")), &golden); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the manager's clean-up
	recs, err := st.Jobs()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(golden) || len(recs) != 9 {
		t.Fatalf("%d stored jobs, %d in views.json, want 9", len(recs), len(golden))
	}
	media := t.TempDir()
	for _, name := range []string{"clip.mp4", "gone.mp4", "long.mp4"} { // a file job whose file is gone fails
		if err := os.WriteFile(filepath.Join(media, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := testManager(t, Config{Output: filepath.Join(data, "out"), MediaRoot: media, Store: st, CPU: cpucap.New(0.01, t.TempDir())})
	for id, raw := range recs {
		rec, err := decodeRecord(raw)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		sameView(t, id+" as listed", (&Job{view: rec.view()}).View(), golden[id])
		checkStoredAgain(t, id, rec)
		checkStart(t, m, id, rec)
	}

	if err := m.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	for id, want := range golden {
		j, err := m.Get(id)
		if err != nil {
			t.Fatalf("%s not restored: %v", id, err)
		}
		v := j.View()
		switch {
		case strings.Contains(string(want), `"ended"`):
			sameView(t, id+" restored", v, want)
		case id == "cam-queued":
			if v.State != Queued || !hasEvent(j, "restore") {
				t.Errorf("%s: %s, want still queued", id, v.State)
			}
		case id == "cam-stopping":
			// Being stopped when the daemon stopped: it ends as the stop would have
			// ended it (a live job: finished), never resumed (issue 16, item 7).
			for deadline := time.Now().Add(10 * time.Second); !j.View().State.Ended() && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
			}
			if v = j.View(); v.State != Finished || !hasEvent(j, "restore") {
				t.Errorf("%s: %s, want finished, not resumed: %+v", id, v.State, j.Events())
			}
		case v.State.Ended() || !hasEvent(j, "restore"):
			t.Errorf("%s: %s, want resumed: %+v", id, v.State, j.Events())
		}
	}
}

// sameView fails the test unless v is the view want: both through the API's JSON, so
// that a key the API has dropped since the golden file was written is not compared.
func sameView(t *testing.T, what string, v View, want json.RawMessage) {
	t.Helper()
	got, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var g, w View
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n%s\nwant\n%s", what, got, want)
	}
}

// checkStoredAgain stores the job of rec again, as a job does, and reads it back.
func checkStoredAgain(t *testing.T, id string, rec storedJob) {
	t.Helper()
	j := &Job{req: Request(rec.Request), ladder: rec.Ladder, plan: rec.Plan, ast: rec.AST, pid: rec.PID, view: rec.view()}
	raw, err := json.Marshal(j.storedLocked())
	if err != nil {
		t.Fatal(err)
	}
	again, err := decodeRecord(raw)
	if err != nil {
		t.Fatalf("%s stored again: %v", id, err)
	}
	if !reflect.DeepEqual(again.view(), rec.view()) || !reflect.DeepEqual(again.Plan, rec.Plan) || !again.AST.Equal(rec.AST) ||
		again.PID != rec.PID || again.Request != rec.Request || !reflect.DeepEqual(again.Ladder, rec.Ladder) || again.Version != storedVersion {
		t.Errorf("%s stored again reads as\n%+v\nwant\n%+v", id, again, rec)
	}
}

// checkStart checks what the job of rec would resume from: for a live job that had
// planned, its stored plan, timeline and segment index, as the fixture's daemon left them.
func checkStart(t *testing.T, m *Manager, id string, rec storedJob) {
	t.Helper()
	want := map[string]struct {
		ast  string
		segs int // per track, 180p and aac
	}{
		"cam-running":      {"2026-12-05T19:03:08.999Z", 10},
		"cam-reconnecting": {"2026-12-05T19:03:23.111Z", 4},
		"cam-stopping":     {"2026-12-05T19:03:43.864Z", 4},
		"cam-finished":     {"2026-12-05T19:03:29.425Z", 4},
	}
	w, planned := want[id]
	src, _ := source.Parse(rec.Request.Source, m.cfg.MediaRoot)
	st, err := m.startOf(m.newJob(id, Request(rec.Request), src, rec.Ladder, rec.view()), rec)
	if err != nil {
		t.Fatal(err)
	}
	if !planned {
		if st.plan != nil || st.segments != nil || st.info != rec.Input {
			t.Errorf("%s resumes from %+v, want its probe only", id, st)
		}
		return
	}
	ast, _ := time.Parse(time.RFC3339, w.ast)
	if st.plan == nil || len(st.plan.Video) != 1 || st.plan.Video[0].Name != "180p" || !st.ast.Equal(ast) ||
		len(st.segments["180p"]) != w.segs || len(st.segments["aac"]) != w.segs || st.info == nil || st.info.Width != 320 {
		t.Errorf("%s resumes from plan %+v, timeline %v, %d+%d segments, input %+v; want 180p, %v, %d each",
			id, st.plan, st.ast, len(st.segments["180p"]), len(st.segments["aac"]), st.info, ast, w.segs)
	}
}

// TestStoredRenditions stores a job whose audio renditions come from several source
// tracks and languages and reads it back: a restored job lists each rendition's
// language and source track as it did, under the keys the API's view (and so format 2)
// writes.
func TestStoredRenditions(t *testing.T) {
	renditions := []Rendition{
		{Name: "720p", Kind: "video", Width: 1280, Height: 720, Bitrate: 3_000_000, Encoder: "libx264", Codecs: "avc1.64001f"},
		{Name: "hi_0", Kind: "audio", Bitrate: 128_000, Encoder: "aac", Codecs: "mp4a.40.2", Language: "en"},
		{Name: "hi_1", Kind: "audio", Bitrate: 128_000, Encoder: "aac", Codecs: "mp4a.40.2", Language: "fr", Track: 1},
	}
	j := &Job{view: View{ID: "two-languages", State: Finished, Renditions: renditions}}
	raw, err := json.Marshal(j.storedLocked())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"language":"fr","track":1`, `"language":"en"`} {
		if !strings.Contains(string(raw), key) {
			t.Errorf("stored record lacks %s: %s", key, raw)
		}
	}
	rec, err := decodeRecord(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.view().Renditions; !reflect.DeepEqual(got, renditions) {
		t.Errorf("restored renditions\n%+v\nwant\n%+v", got, renditions)
	}
}
