package job

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/transcoderd/transcoderd/internal/ingest"
	"github.com/transcoderd/transcoderd/internal/store"
)

// TestPushBoundKey checks a push job whose key is kept in an ingest bindings file: it
// is created with that key, and no answer shows one; restored with a key changed in
// the file, it takes the file's (BindKey), which the store keeps.
func TestPushBoundKey(t *testing.T) {
	db := store.NewMemory()
	storedHash := func() string {
		t.Helper()
		recs, err := db.Jobs()
		if err != nil {
			t.Fatal(err)
		}
		var rec storedJob
		if err := json.Unmarshal(recs["hall"], &rec); err != nil {
			t.Fatal(err)
		}
		return rec.KeyHash
	}
	first, second := ingest.HashKey("bound-key-0123456789"), ingest.HashKey("new-bound-key-0123456789")
	m := testManager(t, Config{Store: db, Ingest: testHub(t)})
	j, err := m.CreateBound(context.Background(), Request{Source: "push", Ladder: "test", ID: "hall"}, first)
	if err != nil {
		t.Fatal(err)
	}
	if v := j.CreatedView(); v.Ingest == nil || v.Ingest.StreamKey != "" || v.Ingest.RTMPURL == "" {
		t.Errorf("bound job's creation answer shows ingest %+v, want its url and no key", v.Ingest)
	}
	waitState(t, j, Waiting)
	if got := storedHash(); got != first.String() {
		t.Fatalf("stored key hash %s, want the bound key's", got)
	}
	if changed, err := m.BindKey("hall", first); changed || err != nil {
		t.Errorf("BindKey of the same key: %v, %v; want no change", changed, err)
	}
	m.Close() // a daemon restart, the key changed in the file meanwhile

	m2 := testManager(t, Config{Store: db, Ingest: testHub(t)})
	if err := m2.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	j2, err := m2.Get("hall")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, j2, Waiting)
	if changed, err := m2.BindKey("hall", second); !changed || err != nil {
		t.Fatalf("BindKey of a new key: %v, %v; want a change", changed, err)
	}
	if got := storedHash(); got != second.String() {
		t.Errorf("stored key hash %s after BindKey, want the new key's", got)
	}
	if _, err := m2.BindKey("nope", second); !errors.Is(err, ErrNotFound) {
		t.Errorf("BindKey of an unknown job: %v", err)
	}
}
