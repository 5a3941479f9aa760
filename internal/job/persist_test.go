package job

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/store"
)

// TestRestoreRecordFormat1 restores a job stored by the daemon before durations were
// seconds: testdata/record-format1.json was written by that version's own code (a
// finished file job: ladder and plan with durations in nanoseconds, input.duration in
// nanoseconds, progress.out_time "1m2.3s"). The job is listed as it ended, its
// durations read right, and it is stored again in the current format.
func TestRestoreRecordFormat1(t *testing.T) {
	old, err := os.ReadFile(filepath.Join("testdata", "record-format1.json"))
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	st, err := store.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.PutJob("vod", json.RawMessage(old)); err != nil {
		t.Fatal(err)
	}
	media := t.TempDir()
	if err := os.WriteFile(filepath.Join(media, "clip.mp4"), nil, 0o644); err != nil { // a source that is gone fails the job
		t.Fatal(err)
	}
	m := testManager(t, Config{Output: filepath.Join(data, "out"), MediaRoot: media, Store: st})
	if err := m.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	j, err := m.Get("vod")
	if err != nil {
		t.Fatalf("the stored job was not restored: %v", err)
	}
	v := j.View()
	if v.State != Finished || v.Segments != 14 || v.Input == nil || v.Input.Duration != 12480*time.Millisecond {
		t.Errorf("restored view: state %s, %d segments, input %+v", v.State, v.Segments, v.Input)
	}
	if j.ladder.SegmentDuration != time.Second || j.ladder.Window != 2*time.Minute || j.plan == nil || j.plan.SegmentDuration != time.Second {
		t.Errorf("restored ladder: segments %v, window %v; plan %+v", j.ladder.SegmentDuration, j.ladder.Window, j.plan)
	}
	api, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(api), `"duration":12.48}`) || !strings.Contains(string(api), `"out_time":0,`) {
		t.Errorf("the API shows %s", api)
	}

	// Written again, the record is in the current format and reads back the same.
	j.persist()
	recs, err := st.Jobs()
	if err != nil {
		t.Fatal(err)
	}
	raw := string(recs["vod"])
	for _, want := range []string{`"format":2`, `"segment_duration":1`, `"window":120`, `"duration":12.48`} {
		if !strings.Contains(raw, want) {
			t.Errorf("stored again without %s: %s", want, raw)
		}
	}
	rec, err := decodeRecord(recs["vod"])
	if err != nil || rec.Ladder.Window != 2*time.Minute || rec.Input.Duration != 12480*time.Millisecond {
		t.Errorf("the record stored again reads as %+v, %v", rec, err)
	}
}

// TestDecodeRecord: records of format 1 are upgraded; what the last run was doing may
// be unreadable without losing the job, but a duration that is not nanoseconds is an
// error; a record of format 2 is read as it is.
func TestDecodeRecord(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		window  time.Duration
		outTime float64
		err     string
	}{
		{name: "format 1", in: `{"ladder":{"window":90000000000},"view":{"progress":{"out_time":"1m2.3s"},"out_time":"1m2.3s"}}`, window: 90 * time.Second, outTime: 62.3},
		{name: "format 1, empty out_time", in: `{"ladder":{"window":0},"view":{"progress":{"out_time":""}}}`},
		{name: "format 1, odd out_time", in: `{"view":{"progress":{"out_time":"soon"},"out_time":7}}`},
		{name: "format 1, no ladder", in: `{"request":{"source":"a.mp4"}}`},
		{name: "format 1, window not a number", in: `{"ladder":{"window":"90s"}}`, err: "ladder.window"},
		{name: "format 1, window not whole", in: `{"ladder":{"window":1.5}}`, err: "ladder.window"},
		{name: "format 2", in: `{"format":2,"ladder":{"window":90},"view":{"progress":{"out_time":62.3}}}`, window: 90 * time.Second, outTime: 62.3},
		{name: "format 2 with a string", in: `{"format":2,"view":{"progress":{"out_time":"1m2.3s"}}}`, err: "out_time"},
		{name: "not JSON", in: `{"format":`, err: "unexpected end"},
		{name: "newer format", in: `{"format":3,"ladder":{"window":90}}`, err: "record of format 3, newer than this daemon's 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := decodeRecord([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var window time.Duration
			if rec.Ladder != nil {
				window = rec.Ladder.Window
			}
			if window != tc.window || rec.View.Progress.OutTime != tc.outTime {
				t.Errorf("window %v, out_time %v; want %v, %v", window, rec.View.Progress.OutTime, tc.window, tc.outTime)
			}
		})
	}
}
