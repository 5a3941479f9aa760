package job

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/manifest"
)

// storedJob is what the store keeps of a job: a type of its own, not the API's View, so
// that renaming a field of View cannot drop it from the jobs a daemon restores after an
// upgrade. It holds what a restore needs: enough to list the job again as it was and,
// for a job that had not ended, to resume it exactly as it ran (same ladder as read
// then, same plan, same presentation timeline). Its keys are those of format 2, which
// stored the API's view itself: a record of format 2 reads as one, and one written now
// reads in a daemon of format 2.
type storedJob struct {
	Version int                `json:"format"` // storedVersion when written
	Request storedRequest      `json:"request"`
	Ladder  *ladder.Ladder     `json:"ladder"`
	Plan    *ladder.Plan       `json:"plan,omitempty"`
	AST     time.Time          `json:"availability_start,omitzero"`
	PID     int                `json:"pid,omitempty"` // the ffmpeg running when this was written
	View    storedView         `json:"view"`
	Input   *ladder.SourceInfo `json:"input,omitempty"`
	// KeyHash is a push job's stream key, hashed (ingest.Hash): the key itself is
	// kept nowhere.
	KeyHash string `json:"key_sha256,omitempty"`
	// Recording is a recording job's: its tracks' outlines (their segments are in
	// the store's index) and its clips.
	Recording *storedRecording `json:"recording,omitempty"`
}

// storedRecording is a recording as the store keeps it, less its segments.
type storedRecording struct {
	Tracks  []manifest.Track `json:"tracks,omitempty"` // outlines: Segments empty
	SegDur  float64          `json:"segment_duration,omitempty"`
	Audio   bool             `json:"audio_only,omitempty"`
	Clips   []Clip           `json:"clips,omitempty"`
	Expired bool             `json:"expired,omitempty"`
	Stop    recordStop       `json:"stop,omitzero"`
}

// storedRequest is the job's Request.
type storedRequest struct {
	Source string `json:"source"`
	Ladder string `json:"ladder"`
	ID     string `json:"id,omitempty"`
	Queue  bool   `json:"queue,omitempty"`
	// SRTPassphrase is a push job's SRT passphrase: the daemon needs it to decrypt
	// its publishers after a restart.
	SRTPassphrase string `json:"srt_passphrase,omitempty"`
	Record        *bool  `json:"record,omitempty"`
}

// storedView is what a restored job shows: what it showed, less what its last ffmpeg
// run was doing (speed, lag, shed rungs), which does not hold for the next.
type storedView struct {
	ID         string            `json:"id"`
	State      State             `json:"state"`
	Source     string            `json:"source"`
	Ladder     string            `json:"ladder"`
	Live       bool              `json:"live"`
	Renditions []storedRendition `json:"renditions"`
	Dropped    []string          `json:"dropped,omitempty"`
	HLS        string            `json:"hls"`
	DASH       string            `json:"dash"`
	Error      string            `json:"error,omitempty"`
	FFmpeg     []string          `json:"ffmpeg,omitempty"`
	// Progress keeps how far the last run had encoded, for whoever reads the store.
	Progress struct {
		OutTime float64 `json:"out_time"`
	} `json:"progress"`
	Segments int        `json:"segments"`
	Restarts int        `json:"restarts"`
	Stalls   int        `json:"stalls"`
	CPU      float64    `json:"cpu"`
	Waiting  string     `json:"waiting,omitempty"`
	Created  time.Time  `json:"created"`
	Ended    *time.Time `json:"ended,omitempty"`
}

// storedRendition is a Rendition, less whether it is shed now.
type storedRendition struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Width   int    `json:"width,omitempty"`
	Height  int    `json:"height,omitempty"`
	Bitrate int64  `json:"bitrate"`
	Encoder string `json:"encoder"`
	Codecs  string `json:"codecs,omitempty"`
	// Language and Track are an audio rendition's BCP 47 language and source track.
	Language string `json:"language,omitempty"`
	Track    int    `json:"track,omitempty"`
}

// storedVersion is the version of the record's JSON. Format 1, which had no "format"
// key, wrote durations as Go does: nanoseconds, or a string such as "1m2.3s" for
// progress.out_time. Format 2 writes seconds, as the API does.
const storedVersion = 2

// storedLocked is the record of j. j.mu is held.
func (j *Job) storedLocked() storedJob {
	v := j.view
	s := storedJob{Version: storedVersion, Request: storedRequest(j.req), Ladder: j.ladder, Plan: j.plan, AST: j.ast, PID: j.pid, Input: v.Input}
	if j.stream != nil {
		s.KeyHash = j.keyHash.String()
	}
	s.Recording = j.rec.stored()
	s.View = storedView{
		ID: v.ID, State: v.State, Source: v.Source, Ladder: v.Ladder, Live: v.Live, Dropped: v.Dropped,
		HLS: v.HLS, DASH: v.DASH, Error: v.Error, FFmpeg: v.FFmpeg, Segments: v.Segments, Restarts: v.Restarts,
		Stalls: v.Stalls, CPU: v.CPU, Waiting: v.Waiting, Created: v.Created, Ended: v.Ended,
	}
	s.View.Progress.OutTime = v.Progress.OutTime
	for _, r := range v.Renditions {
		s.View.Renditions = append(s.View.Renditions, storedRendition{
			Name: r.Name, Kind: r.Kind, Width: r.Width, Height: r.Height, Bitrate: r.Bitrate, Encoder: r.Encoder, Codecs: r.Codecs,
			Language: r.Language, Track: r.Track,
		})
	}
	return s
}

// view is the job of s as a restore lists it.
func (s storedJob) view() View {
	sv := s.View
	v := View{
		ID: sv.ID, State: sv.State, Source: sv.Source, Ladder: sv.Ladder, Live: sv.Live, Input: s.Input, Dropped: sv.Dropped,
		HLS: sv.HLS, DASH: sv.DASH, Error: sv.Error, FFmpeg: sv.FFmpeg, Segments: sv.Segments, Restarts: sv.Restarts,
		Stalls: sv.Stalls, CPU: sv.CPU, Waiting: sv.Waiting, Created: sv.Created, Ended: sv.Ended,
	}
	for _, r := range sv.Renditions {
		v.Renditions = append(v.Renditions, Rendition{
			Name: r.Name, Kind: r.Kind, Width: r.Width, Height: r.Height, Bitrate: r.Bitrate, Encoder: r.Encoder, Codecs: r.Codecs,
			Language: r.Language, Track: r.Track,
		})
	}
	return v
}

// decodeRecord reads a stored record of any format.
func decodeRecord(raw []byte) (storedJob, error) {
	var head struct {
		Format int `json:"format"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return storedJob{}, err
	}
	if head.Format > storedVersion {
		// A newer daemon wrote it (a downgrade): its keys may mean something else here.
		return storedJob{}, fmt.Errorf("record of format %d, newer than this daemon's %d: written by a newer transcoderd, left untouched", head.Format, storedVersion)
	}
	if head.Format < 2 {
		var err error
		if raw, err = upgradeRecord1(raw); err != nil {
			return storedJob{}, fmt.Errorf("record of format 1: %w", err)
		}
	}
	var rec storedJob
	err := json.Unmarshal(raw, &rec)
	return rec, err
}

// upgradeRecord1 rewrites a record of format 1 in format 2: its durations in seconds.
func upgradeRecord1(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var rec map[string]any
	if err := dec.Decode(&rec); err != nil {
		return nil, err
	}
	nanos := [][]string{
		{"ladder", "segment_duration"}, {"ladder", "window"}, {"plan", "segment_duration"},
		{"input", "duration"}, {"view", "input", "duration"},
	}
	for _, path := range nanos {
		parent, key, v := lookup(rec, path)
		if v == nil {
			continue
		}
		n, ok := v.(json.Number)
		ns, err := n.Int64()
		if !ok || err != nil {
			return nil, fmt.Errorf("%s: %v is not a number of nanoseconds", strings.Join(path, "."), v)
		}
		parent[key] = json.Number(strconv.FormatFloat(time.Duration(ns).Seconds(), 'f', -1, 64))
	}
	// What the last run was doing: a value that does not read is dropped, not fatal.
	for _, path := range [][]string{{"view", "progress", "out_time"}, {"view", "out_time"}} {
		parent, key, v := lookup(rec, path)
		if v == nil {
			continue
		}
		s, _ := v.(string)
		d, _ := time.ParseDuration(s)
		parent[key] = d.Seconds()
	}
	rec["format"] = 2
	return json.Marshal(rec)
}

// lookup finds path in nested objects: the object holding the last key, the key, and
// its value (nil when absent).
func lookup(obj map[string]any, path []string) (map[string]any, string, any) {
	for _, k := range path[:len(path)-1] {
		next, ok := obj[k].(map[string]any)
		if !ok {
			return nil, "", nil
		}
		obj = next
	}
	key := path[len(path)-1]
	return obj, key, obj[key]
}
