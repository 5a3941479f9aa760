package job

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestViewListsNotNull: a job that has no renditions yet (a live source not probed) and
// no events (a job restored after a restart) shows [], not null.
func TestViewListsNotNull(t *testing.T) {
	j := &Job{}
	v, _ := json.Marshal(j.View())
	if !strings.Contains(string(v), `"renditions":[]`) {
		t.Errorf("view: %s", v)
	}
	if e, _ := json.Marshal(j.Events()); string(e) != "[]" {
		t.Errorf("events: %s", e)
	}
}
