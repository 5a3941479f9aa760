package deploy

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// unit is a systemd unit file: section → key → values, in order.
type unit map[string]map[string][]string

func readUnit(t *testing.T, path string) unit {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	section := ""
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		case strings.HasSuffix(line, "\\"):
			t.Fatalf("%s:%d: continuation lines are not read here", path, i+1)
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: cannot read %q", path, i+1, line)
			}
			u[section][key] = append(u[section][key], value)
		}
	}
	return u
}

// last is the value of a key that takes one: the last assignment wins.
func (u unit) last(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// environment returns the unit's Environment= assignments, %d (the credentials
// folder) replaced by creds.
func (u unit) environment(t *testing.T, creds string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range u["Service"]["Environment"] {
		w, err := words(e)
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range w {
			name, value, _ := strings.Cut(kv, "=")
			env[name] = strings.ReplaceAll(value, "%d", creds)
		}
	}
	return env
}

// tmpfilesDirs reads the `d` lines of a tmpfiles.d snippet.
type tmpDir struct {
	path  string
	mode  os.FileMode
	owner string
}

func readTmpfiles(t *testing.T, path string) []tmpDir {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []tmpDir
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if f[0] != "d" || len(f) < 5 {
			t.Fatalf("%s: only d lines are read here: %q", path, line)
		}
		mode, err := strconv.ParseUint(f[2], 8, 32)
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, tmpDir{path: f[1], mode: os.FileMode(mode), owner: f[3]})
	}
	return dirs
}

// sysusersUser returns the user a sysusers.d snippet creates (its u line).
func sysusersUser(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "u" {
			return f[1]
		}
	}
	t.Fatalf("%s creates no user", path)
	return ""
}

const (
	unitFile     = "systemd/transcoderd.service"
	sysusersFile = "systemd/transcoderd.sysusers"
	tmpfilesFile = "systemd/transcoderd.tmpfiles"
)

// TestSystemdUnit checks the unit against the project: its own user, the binary where
// the Dockerfile puts it, variables the binary reads, the cgroup delegated (the CPU
// cap lives inside the service's cgroup), hardening that leaves ffmpeg its GPUs and the
// cap its cgroup, and the folders the daemon writes among the writable ones.
func TestSystemdUnit(t *testing.T) {
	u := readUnit(t, unitFile)
	s := u["Service"]
	if user := sysusersUser(t, sysusersFile); u.last("Service", "User") != user || u.last("Service", "Group") != user {
		t.Errorf("User=%s Group=%s, want %s (%s)", u.last("Service", "User"), u.last("Service", "Group"), user, sysusersFile)
	}
	d := readDockerfile(t, "../Dockerfile")
	img, err := d.image("cpu")
	if err != nil {
		t.Fatal(err)
	}
	if exec := strings.Fields(u.last("Service", "ExecStart")); len(exec) == 0 || exec[0] != img.entrypoint[0] {
		t.Errorf("ExecStart=%v, want the binary at %s, as in the Dockerfile and the install steps", exec, img.entrypoint[0])
	}
	if v := u.last("Service", "Delegate"); v != "yes" && !slices.Contains(strings.Fields(v), "cpu") {
		t.Errorf("Delegate=%q: the daemon cannot keep the CPU cap in the service's cgroup", v)
	}
	for key, want := range map[string]string{"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes", "ProtectHome": "yes"} {
		if got := u.last("Service", key); got != want {
			t.Errorf("%s=%q, want %s", key, got, want)
		}
	}
	for key, why := range map[string]string{
		"ProtectControlGroups":   "makes /sys/fs/cgroup read-only: the CPU cap could not be placed",
		"PrivateDevices":         "hides /dev/dri and /dev/nvidia*: no GPU encoding",
		"MemoryDenyWriteExecute": "breaks GPU drivers and Vulkan, which compile code at run time",
	} {
		if v := u.last("Service", key); v == "yes" || v == "true" || v == "on" || v == "1" {
			t.Errorf("%s=%s %s", key, v, why)
		}
	}
	vars := flagVariables(t)
	env := u.environment(t, "/run/credentials/transcoderd.service")
	for name := range env {
		if strings.HasPrefix(name, "TRANSCODERD_") && !vars[name] {
			t.Errorf("Environment=%s: transcoderd reads no such variable", name)
		}
	}
	var writable []string
	for _, d := range s["StateDirectory"] {
		for _, f := range strings.Fields(d) {
			writable = append(writable, "/var/lib/"+f)
		}
	}
	for _, d := range s["ReadWritePaths"] {
		writable = append(writable, strings.Fields(d)...)
	}
	for _, v := range []string{"TRANSCODERD_OUTPUT", "TRANSCODERD_DATA"} {
		ok := false
		for _, w := range writable {
			ok = ok || env[v] == w || strings.HasPrefix(env[v], w+"/")
		}
		if !ok {
			t.Errorf("%s=%s is not writable under ProtectSystem=strict (StateDirectory, ReadWritePaths: %v)", v, env[v], writable)
		}
	}
	if !strings.HasPrefix(env["TRANSCODERD_LISTEN"], "127.") && env["TRANSCODERD_API_TOKEN_FILE"] == "" {
		t.Errorf("the service listens on %s without a token", env["TRANSCODERD_LISTEN"])
	}
	if tf := env["TRANSCODERD_API_TOKEN_FILE"]; tf != "" && !slices.ContainsFunc(s["LoadCredential"], func(c string) bool {
		name, _, _ := strings.Cut(c, ":")
		return tf == "/run/credentials/transcoderd.service/"+name
	}) {
		t.Errorf("TRANSCODERD_API_TOKEN_FILE=%s is no LoadCredential= of the unit (%v)", tf, s["LoadCredential"])
	}
	dirs := readTmpfiles(t, tmpfilesFile)
	for _, v := range []string{"TRANSCODERD_OUTPUT", "TRANSCODERD_DATA", "TRANSCODERD_MEDIA_ROOT", "TRANSCODERD_PROFILES"} {
		if !slices.ContainsFunc(dirs, func(d tmpDir) bool { return d.path == env[v] }) {
			t.Errorf("%s=%s: %s does not create it", v, env[v], tmpfilesFile)
		}
	}
}

// TestSystemdVerify runs systemd's own checks over the unit and its snippets, in a
// root folder of their own: systemd-analyze verify (unknown keys, bad values, a
// missing binary), then systemd-sysusers and systemd-tmpfiles, which must create the
// user and the folders with their modes.
func TestSystemdVerify(t *testing.T) {
	for _, tool := range []string{"systemd-analyze", "systemd-sysusers", "systemd-tmpfiles"} {
		if _, err := exec.LookPath(tool); err != nil {
			unavailable(t, "%s not found (Debian: apt-get install systemd)", tool)
		}
	}
	root := t.TempDir()
	install := func(src, dst string, mode os.FileMode) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(dst)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, dst), b, mode); err != nil {
			t.Fatal(err)
		}
	}
	// The steps of the unit's header, into root.
	install(transcoderd(t), "/usr/local/bin/transcoderd", 0o755)
	install(unitFile, "/etc/systemd/system/transcoderd.service", 0o644)
	install(sysusersFile, "/etc/sysusers.d/transcoderd.conf", 0o644)
	install(tmpfilesFile, "/etc/tmpfiles.d/transcoderd.conf", 0o644)
	// verify resolves the unit's dependencies (multi-user.target, ...) in root too.
	units := "/usr/lib/systemd/system"
	if _, err := os.Stat(units); err != nil {
		units = "/lib/systemd/system"
	}
	err := filepath.WalkDir(units, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(units, p)
		install(p, filepath.Join("/usr/lib/systemd/system", rel), 0o644)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	run := func(name string, args ...string) {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 && name == "systemd-analyze" {
			t.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run("systemd-analyze", "verify", "--man=no", "--root="+root, "transcoderd.service")
	run("systemd-sysusers", "--root="+root, "transcoderd.conf")
	run("systemd-tmpfiles", "--root="+root, "--create", "transcoderd.conf")

	user := sysusersUser(t, sysusersFile)
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	group, _ := os.ReadFile(filepath.Join(root, "etc/group"))
	if !strings.Contains(string(passwd), "\n"+user+":") && !strings.HasPrefix(string(passwd), user+":") {
		t.Errorf("systemd-sysusers created no user %s:\n%s", user, passwd)
	}
	for _, g := range []string{"video", "render"} {
		if !strings.Contains(string(group), g+":") || !strings.Contains(string(group), ":"+user) {
			t.Errorf("%s is not in group %s:\n%s", user, g, group)
		}
	}
	for _, d := range readTmpfiles(t, tmpfilesFile) {
		st, err := os.Stat(filepath.Join(root, d.path))
		if err != nil {
			t.Errorf("systemd-tmpfiles: %v", err)
			continue
		}
		if st.Mode().Perm() != d.mode {
			t.Errorf("%s: mode %o, want %o", d.path, st.Mode().Perm(), d.mode)
		}
	}
}

// TestSystemdEnvironment starts the real binary with the unit's environment, over the
// folders its tmpfiles snippet creates (mapped under a temporary root; the profiles
// folder empty), as a user of its own when the test runs as root, with the token in
// the credentials folder systemd would hand it, and runs a job on `default`.
func TestSystemdEnvironment(t *testing.T) {
	testmedia.RequireFFmpeg(t)
	const uid = 10001 // the service user's; sysusers picks a free system uid
	u := readUnit(t, unitFile)
	user := sysusersUser(t, sysusersFile)
	s := newSystem(t, uid)
	for _, d := range readTmpfiles(t, tmpfilesFile) {
		owner := 0
		if d.owner == user {
			owner = uid
		}
		s.mkdir(t, d.path, owner, d.mode)
	}
	creds := "/run/credentials/transcoderd.service"
	env := u.environment(t, creds)
	s.mkdir(t, creds, 0, 0o755)
	token := "fedcba9876543210fedcba9876543210"
	if err := os.WriteFile(s.path(creds+"/token"), []byte(token+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	s.chown(t, creds+"/token", uid) // systemd makes the credential readable by the service alone
	s.dir = "/"
	s.setEnv(env, "127.0.0.1:0")
	r := s.start(t)
	s.exercise(t, r, token, env["TRANSCODERD_MEDIA_ROOT"], env["TRANSCODERD_OUTPUT"])
}
