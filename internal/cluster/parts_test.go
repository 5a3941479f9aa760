package cluster

import (
	"context"
	"slices"
	"testing"
)

// TestDeleteParts: a box that took a job over deletes the parts of the job's earlier
// epochs, never those of a later one (a newer owner's, written meanwhile), nor another
// job's; keep 0 deletes them all.
func TestDeleteParts(t *testing.T) {
	b := boltFleet(t).admin
	ctx := context.Background()
	for _, k := range []string{"cam.1.p", "cam.2.p", "cam.3.p", "cam.12.p", "camx.1.p"} {
		if _, err := b.Parts.Create(ctx, k, []byte(`{"v":1,"data":[]}`)); err != nil {
			t.Fatal(err)
		}
	}
	left := func() []string {
		es, err := b.Parts.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, e := range es {
			keys = append(keys, e.Key)
		}
		slices.Sort(keys)
		return keys
	}
	if err := DeleteParts(ctx, b, "cam", 2); err != nil {
		t.Fatal(err)
	}
	if got, want := left(), []string{"cam.12.p", "cam.2.p", "cam.3.p", "camx.1.p"}; !slices.Equal(got, want) {
		t.Errorf("after DeleteParts(keep 2): %q, want %q", got, want)
	}
	if err := DeleteParts(ctx, b, "cam", 0); err != nil {
		t.Fatal(err)
	}
	if got, want := left(), []string{"camx.1.p"}; !slices.Equal(got, want) {
		t.Errorf("after DeleteParts(keep 0): %q, want %q", got, want)
	}
}
