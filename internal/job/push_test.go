package job

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/ingest"
	"github.com/transcoderd/transcoderd/internal/store"
)

// testHub is a hub with an RTMP listener on loopback, closed with the test.
func testHub(t *testing.T) *ingest.Hub {
	t.Helper()
	h, err := ingest.New(ingest.Config{RTMPListen: "127.0.0.1:0", PublicHost: "ingest.test", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// TestPushJobKey checks a push job's life without a publisher: it waits for one, its
// key shows in its creation answer only, the store keeps the key's hash and never the
// key, and a daemon restarted on that store puts the job back on its hub, waiting.
func TestPushJobKey(t *testing.T) {
	db := store.NewMemory()
	m := testManager(t, Config{Store: db, Ingest: testHub(t)})
	j, err := m.Create(context.Background(), Request{Source: "push", Ladder: "test", ID: "stage"})
	if err != nil {
		t.Fatal(err)
	}
	created := j.CreatedView()
	key := created.Ingest.StreamKey
	if len(key) != 26 || !strings.HasPrefix(created.Ingest.RTMPURL, "rtmp://ingest.test:") {
		t.Fatalf("creation answer's ingest %+v: want a url on the public host and a key", created.Ingest)
	}
	if again := j.CreatedView(); again.Ingest.StreamKey != "" {
		t.Error("the key shows twice")
	}
	waitState(t, j, Waiting)
	if v := j.View(); v.Waiting != "publisher" || v.Ingest.StreamKey != "" {
		t.Errorf("waiting %q, key %q: want publisher, no key", v.Waiting, v.Ingest.StreamKey)
	}
	recs, err := db.Jobs()
	if err != nil {
		t.Fatal(err)
	}
	var rec storedJob
	if err := json.Unmarshal(recs["stage"], &rec); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(recs["stage"]), key) || rec.KeyHash != ingest.HashKey(key).String() {
		t.Fatalf("stored record %s: want the key's hash and never the key", recs["stage"])
	}
	m.Close() // a daemon restart

	m2 := testManager(t, Config{Store: db, Ingest: testHub(t)})
	if err := m2.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	j2, err := m2.Get("stage")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, j2, Waiting)
	if _, err := m2.RotateKey("stage"); err != nil {
		t.Errorf("rotate the restored job's key: %v", err)
	}
	if _, err := m2.RotateKey("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("rotate an unknown job: %v", err)
	}
}

// TestPushJobRefusedWithoutListener checks that a push job is refused (400) when no
// listener of its protocols is on.
func TestPushJobRefusedWithoutListener(t *testing.T) {
	tests := []struct {
		name   string
		hub    bool
		source string
	}{
		{"no hub", false, "push"},
		{"srt only asked, rtmp on", true, "push:srt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{}
			if tt.hub {
				cfg.Ingest = testHub(t)
			}
			m := testManager(t, cfg)
			_, err := m.Create(context.Background(), Request{Source: tt.source, Ladder: "test"})
			if !errors.Is(err, ErrInvalid) || !errors.Is(err, ingest.ErrOff) {
				t.Errorf("create %s: %v, want invalid: ingest off", tt.source, err)
			}
		})
	}
}

// TestSRTPassphraseRequest checks which requests may carry an SRT passphrase: a push
// source that allows SRT, with one SRT accepts.
func TestSRTPassphraseRequest(t *testing.T) {
	h, err := ingest.New(ingest.Config{RTMPListen: "127.0.0.1:0", SRTListen: "127.0.0.1:0", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	m := testManager(t, Config{Ingest: h})
	tests := []struct {
		name, source, passphrase string
		ok                       bool
	}{
		{"push", "push", "correcthorse", true},
		{"push over srt", "push:srt", "correcthorse", true},
		{"too short", "push", "short", false},
		{"too long", "push", strings.Repeat("p", 80), false},
		{"rtmp only", "push:rtmp", "correcthorse", false},
		{"a pull source", "rtmp://127.0.0.1/live/x", "correcthorse", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := m.check(context.Background(), &Request{Source: tt.source, Ladder: "test", ID: "j" + string(rune('a'+i)), SRTPassphrase: tt.passphrase})
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalid)) {
				t.Errorf("check %s with %q: %v, want ok %v", tt.source, tt.passphrase, err, tt.ok)
			}
		})
	}
}
