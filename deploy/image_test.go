package deploy

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// targets are the images the Dockerfile builds: cpu, the default, is its last stage.
var targets = []string{"cpu", "nvenc"}

// imageUser is the user an image runs as, from its RUN lines.
type layout struct {
	user  string
	uid   int
	gid   int
	dirs  []string               // mkdir -p
	owned map[string]bool        // chown <user>
	modes map[string]os.FileMode // chmod
}

// readLayout reads what an image's RUN lines do to the file system: the user
// useradd creates, the folders mkdir creates, chown gives away and chmod sets. Only
// these commands are read; a RUN line does not need a shell to be understood.
func readLayout(img image) (layout, error) {
	l := layout{uid: -1, owned: map[string]bool{}, modes: map[string]os.FileMode{}}
	for _, run := range img.run {
		for _, command := range strings.Split(run, "&&") {
			w, err := words(command)
			if err != nil || len(w) == 0 {
				return l, fmt.Errorf("RUN %q: %v", command, err)
			}
			var operands []string
			for _, a := range w[1:] {
				if !strings.HasPrefix(a, "-") {
					operands = append(operands, a)
				}
			}
			switch w[0] {
			case "useradd":
				for i, a := range w {
					if a == "--uid" && i+1 < len(w) {
						l.uid, _ = strconv.Atoi(w[i+1])
					}
					if a == "--gid" && i+1 < len(w) {
						l.gid, _ = strconv.Atoi(w[i+1])
					}
				}
				l.user = w[len(w)-1]
			case "mkdir":
				l.dirs = append(l.dirs, operands...)
			case "chown":
				if len(operands) < 2 || !strings.HasPrefix(operands[0], l.user+":") {
					return l, fmt.Errorf("RUN %q: chown to someone other than %s", command, l.user)
				}
				for _, p := range operands[1:] {
					l.owned[p] = true
				}
			case "chmod":
				mode, err := strconv.ParseUint(operands[0], 8, 32)
				if err != nil {
					return l, fmt.Errorf("RUN %q: %v", command, err)
				}
				for _, p := range operands[1:] {
					l.modes[p] = os.FileMode(mode)
				}
			}
		}
	}
	if l.user == "" || l.uid <= 0 || l.gid <= 0 {
		return l, fmt.Errorf("no useradd --uid <n> --gid <n> <user> in the RUN lines")
	}
	return l, nil
}

// TestDockerfile checks what the linters cannot: stages and tags, that both targets
// run as their own user the binary the build stage made, check their health with it,
// keep data and output in volumes, name only variables the binary reads, and that
// only nvenc asks for GPUs.
func TestDockerfile(t *testing.T) {
	d := readDockerfile(t, "../Dockerfile")
	vars := flagVariables(t)
	names := map[string]bool{}
	for _, s := range d.stages {
		// dockerfilelint's missing_tag rule is off (.dockerfilelintrc): it takes stages for images.
		if !names[s.from] && !strings.Contains(path.Base(s.from), ":") && !strings.Contains(s.from, "@") {
			t.Errorf("line %d: FROM %s is neither an earlier stage nor an image with a tag", s.line, s.from)
		}
		names[s.name] = true
	}
	if last := d.stages[len(d.stages)-1].name; last != "cpu" {
		t.Errorf("the last stage (docker build's default target) is %q, want cpu", last)
	}
	built := ""
	for _, s := range d.stages {
		for _, c := range s.copies {
			if slices.Contains(c, "--from=build") {
				built = c[len(c)-1]
			}
		}
	}
	for _, target := range targets {
		t.Run(target, func(t *testing.T) {
			img, err := d.image(target)
			if err != nil {
				t.Fatal(err)
			}
			l, err := readLayout(img)
			if err != nil {
				t.Fatal(err)
			}
			// Numeric, as Kubernetes' runAsNonRoot needs to tell it is not root.
			if want := fmt.Sprintf("%d:%d", l.uid, l.gid); img.user != want {
				t.Errorf("USER %q, want %q: the uid and gid useradd gives %s", img.user, want, l.user)
			}
			if len(img.entrypoint) != 1 || img.entrypoint[0] != built {
				t.Errorf("ENTRYPOINT %q, want [%q] (the binary copied from the build stage)", img.entrypoint, built)
			}
			if want := fmt.Sprintf(`CMD ["%s", "healthcheck"]`, built); !strings.HasSuffix(img.healthcheck, want) {
				t.Errorf("HEALTHCHECK %q, want it to end in %s", img.healthcheck, want)
			}
			for _, v := range []string{"TRANSCODERD_DATA", "TRANSCODERD_OUTPUT"} {
				if !slices.Contains(img.volumes, img.env[v]) {
					t.Errorf("%s=%s is not a VOLUME (%q)", v, img.env[v], img.volumes)
				}
			}
			for _, v := range []string{"TRANSCODERD_DATA", "TRANSCODERD_OUTPUT", "TRANSCODERD_MEDIA_ROOT", "TRANSCODERD_PROFILES"} {
				if !slices.Contains(l.dirs, img.env[v]) {
					t.Errorf("%s=%s: no RUN line creates it", v, img.env[v])
				}
				if v != "TRANSCODERD_PROFILES" && !l.owned[img.env[v]] {
					t.Errorf("%s=%s is not chowned to %s", v, img.env[v], l.user)
				}
			}
			for name := range img.env {
				if strings.HasPrefix(name, "TRANSCODERD_") && !vars[name] {
					t.Errorf("ENV %s: transcoderd reads no such variable", name)
				}
			}
			if !strings.HasPrefix(img.env["TRANSCODERD_LISTEN"], "127.") && img.env["TRANSCODERD_API_TOKEN_FILE"] == "" {
				t.Errorf("the image listens on %s without a token file", img.env["TRANSCODERD_LISTEN"])
			}
			_, gpus := img.env["NVIDIA_VISIBLE_DEVICES"]
			caps := img.env["NVIDIA_DRIVER_CAPABILITIES"]
			switch {
			case target == "nvenc" && (!gpus || !strings.Contains(caps, "compute") || !strings.Contains(caps, "video")):
				t.Errorf("nvenc: NVIDIA_VISIBLE_DEVICES %v, NVIDIA_DRIVER_CAPABILITIES %q; want the GPUs with compute and video", gpus, caps)
			case target == "cpu" && (gpus || caps != ""):
				t.Error("cpu asks the NVIDIA runtime for GPUs")
			}
		})
	}
}

// TestDockerignore: the build context keeps what go build needs.
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	// Docker matches each pattern against the path and every folder above it; a
	// leading **/ matches at any depth.
	ignored := func(file string) bool {
		for dir := file; dir != "."; dir = filepath.Dir(dir) {
			for _, p := range patterns {
				if ok, _ := filepath.Match(p, dir); ok {
					return true
				}
				if rest, deep := strings.CutPrefix(p, "**/"); deep {
					for sub := dir; ; {
						if ok, _ := filepath.Match(rest, sub); ok {
							return true
						}
						_, after, found := strings.Cut(sub, "/")
						if !found {
							break
						}
						sub = after
					}
				}
			}
		}
		return false
	}
	for _, need := range []string{"go.mod", "go.sum", "cmd/transcoderd/main.go", "profiles/default.yaml", "internal/web/static/index.html", "internal/daemon/daemon.go"} {
		if ignored(need) {
			t.Errorf(".dockerignore leaves %s out of the build", need)
		}
	}
	for _, drop := range []string{".git/config", "out/job/master.m3u8", "data/jobs.db", "web/test/node_modules/x/y.js", "internal/manifest/testdata/a.golden", "transcoderd"} {
		if !ignored(drop) {
			t.Errorf(".dockerignore sends %s to the build", drop)
		}
	}
}

// TestImageEnvironment starts the real binary with exactly the environment each image
// sets (its ENV lines), as its user when the test runs as root, over the folders its RUN
// lines create (mapped under a temporary root: the profiles folder is empty, as in the
// image), and works with it as an operator would: without the token secret it must
// refuse to start and say how to make one; with it, it must offer the built-in ladders
// and run a job on `default` to the end.
func TestImageEnvironment(t *testing.T) {
	testmedia.RequireFFmpeg(t)
	d := readDockerfile(t, "../Dockerfile")
	for _, target := range targets {
		t.Run(target, func(t *testing.T) {
			img, err := d.image(target)
			if err != nil {
				t.Fatal(err)
			}
			l, err := readLayout(img)
			if err != nil {
				t.Fatal(err)
			}
			s := newSystem(t, l.uid)
			for _, dir := range l.dirs {
				owner := 0
				if l.owned[dir] {
					owner = l.uid
				}
				mode, ok := l.modes[dir]
				if !ok {
					mode = 0o755
				}
				s.mkdir(t, dir, owner, mode)
			}
			s.dir = s.path(img.workdir)
			s.setEnv(img.env, "127.0.0.1:0")
			secret := img.env["TRANSCODERD_API_TOKEN_FILE"]

			t.Run("no token secret", func(t *testing.T) {
				r := s.start(t)
				err := r.waitExit(t)
				want := "'api-token-file' " + s.path(secret) + " does not exist: create it, e.g. (umask 077; openssl rand -hex 32 > "
				if err == nil || r.addr != "" || !strings.Contains(r.log.String(), want) {
					t.Errorf("without %s: exit %v, listening on %q; want a refusal saying %q; log:\n%s", secret, err, r.addr, want, r.log)
				}
			})
			token := "0123456789abcdef0123456789abcdef"
			s.mkdir(t, filepath.Dir(secret), 0, 0o755)
			if err := os.WriteFile(s.path(secret), []byte(token+"\n"), 0o400); err != nil {
				t.Fatal(err)
			}
			if s.uid >= 0 { // the test runs as root: the secret is root's until chowned
				t.Run("token secret the user cannot read", func(t *testing.T) {
					r := s.start(t)
					err := r.waitExit(t)
					want := fmt.Sprintf("'api-token-file' %s cannot be read by the daemon's user (uid %d): give it that file (chown %d ", s.path(secret), l.uid, l.uid)
					if err == nil || !strings.Contains(r.log.String(), want) {
						t.Errorf("secret owned by root, mode 0400: exit %v; want a refusal saying %q; log:\n%s", err, want, r.log)
					}
				})
			}
			t.Run("token secret", func(t *testing.T) {
				s.chown(t, secret, l.uid)
				r := s.start(t)
				s.exercise(t, r, token, img.env["TRANSCODERD_MEDIA_ROOT"], img.env["TRANSCODERD_OUTPUT"])
			})
		})
	}
}
