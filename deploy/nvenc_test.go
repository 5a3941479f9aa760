package deploy

import (
	"os"
	"strings"
	"testing"
)

// TestDockerfileNVENC: Dockerfile.nvenc is ./Dockerfile with the nvenc target as its
// default. The copy between its markers must be exact, and its last stage the nvenc
// image, so that `docker build -f Dockerfile.nvenc` and `--target nvenc` build the same.
func TestDockerfileNVENC(t *testing.T) {
	const begin, end = "# ---- begin ./Dockerfile ----\n", "# ---- end ./Dockerfile ----\n"
	main, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	nvenc, err := os.ReadFile("../Dockerfile.nvenc")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(nvenc), begin)
	copied, _, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		t.Fatalf("Dockerfile.nvenc has no %q and %q markers around its copy of ./Dockerfile", begin, end)
	}
	if copied != string(main) {
		t.Errorf("Dockerfile.nvenc's copy of ./Dockerfile differs from it: copy ./Dockerfile between its markers")
	}
	d := readDockerfile(t, "../Dockerfile.nvenc")
	last := d.stages[len(d.stages)-1]
	if last.from != "nvenc" {
		t.Errorf("Dockerfile.nvenc's last stage starts FROM %s, want FROM nvenc (its default target)", last.from)
	}
	img, err := d.image(last.name)
	if err != nil {
		t.Fatal(err)
	}
	want, err := readDockerfile(t, "../Dockerfile").image("nvenc")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want.env {
		if img.env[k] != v {
			t.Errorf("Dockerfile.nvenc's default image has %s=%q, the nvenc target %q", k, img.env[k], v)
		}
	}
	if img.env["NVIDIA_DRIVER_CAPABILITIES"] == "" {
		t.Errorf("Dockerfile.nvenc's default image does not ask for the NVIDIA driver's capabilities")
	}
}
