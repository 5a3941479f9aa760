package coord_test

import (
	"strings"
	"testing"

	"github.com/transcoderd/transcoderd/internal/coord"
)

func TestDecode(t *testing.T) {
	type node struct {
		Box   string `json:"box"`
		Units int    `json:"cpu_budget_units"`
	}
	v2, err := coord.Encode(2, node{Box: "a", Units: 8})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"v":2,"data":{"box":"a","cpu_budget_units":8}}`; string(v2) != want {
		t.Fatalf("encoded %s, want %s", v2, want)
	}
	for _, tc := range []struct {
		name    string
		in      string
		max     int
		wantV   int
		wantErr string
	}{
		{"known version", string(v2), 2, 2, ""},
		{"newer than this build", string(v2), 1, 2, "newer than 1"},
		{"not versioned", `{"box":"a"}`, 2, 0, "not a versioned value"},
		{"not json", `box=a`, 2, 0, "decode"},
		{"wrong data type", `{"v":1,"data":{"box":3}}`, 2, 1, "decode version 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n node
			v, err := coord.Decode([]byte(tc.in), tc.max, &n)
			if v != tc.wantV || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("version %d, err %v; want %d, %q", v, err, tc.wantV, tc.wantErr)
			}
			if err == nil && n != (node{Box: "a", Units: 8}) {
				t.Fatalf("decoded %+v", n)
			}
		})
	}
	if _, err := coord.Encode(0, node{}); err == nil {
		t.Error("schema version 0 accepted")
	}
}
