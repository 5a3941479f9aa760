package cpucap

import (
	"path/filepath"
	"testing"
)

func TestQuota(t *testing.T) {
	tests := []struct {
		name  string
		v2    bool
		cores float64
		files map[string]string // what Set writes
	}{
		{name: "v2", v2: true, cores: 1.5, files: map[string]string{"cpu.max": "150000 100000"}},
		{name: "v2, none", v2: true, cores: 0, files: map[string]string{"cpu.max": "max 100000"}},
		{name: "v2, least", v2: true, cores: 0.001, files: map[string]string{"cpu.max": "1000 100000"}},
		{name: "v1", cores: 0.25, files: map[string]string{"cpu.cfs_quota_us": "25000", "cpu.cfs_period_us": "100000"}},
		{name: "v1, none", cores: -1, files: map[string]string{"cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := Quota{Dir: t.TempDir(), V2: tt.v2}
			if err := q.Set(tt.cores); err != nil {
				t.Fatal(err)
			}
			for file, want := range tt.files {
				if got := read(t, filepath.Join(q.Dir, file)); got != want {
					t.Errorf("%s = %q, want %q", file, got, want)
				}
			}
			got, err := q.Cores()
			if err != nil {
				t.Fatal(err)
			}
			want := max(tt.cores, 0)
			if tt.cores > 0 {
				want = max(tt.cores, 0.01)
			}
			if abs(got-want) > 1e-9 {
				t.Errorf("Cores() = %v, want %v", got, want)
			}
		})
	}
	if err := (Quota{Dir: filepath.Join(t.TempDir(), "gone")}).Set(1); err == nil {
		t.Error("Set in a folder that does not exist succeeded")
	}
}
