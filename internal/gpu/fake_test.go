package gpu

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The probe tests replace ffmpeg and nvidia-smi with this test binary: run under
// the name "ffmpeg" or "nvidia-smi" (a symlink), TestMain plays that tool from the
// scenario file named by $TRANSCODERD_FAKE_SCENARIO, printing the lines kept in
// testdata/ (real ffmpeg output, see testdata/README.md).
func TestMain(m *testing.M) {
	switch filepath.Base(os.Args[0]) {
	case "ffmpeg":
		os.Exit(fakeFFmpeg(os.Args[1:]))
	case "nvidia-smi":
		os.Exit(fakeSMI())
	}
	os.Exit(m.Run())
}

const scenarioEnv = "TRANSCODERD_FAKE_SCENARIO"

// scenario is what the fake tools do. File names are relative to testdata/.
type scenario struct {
	Testdata string   `json:"testdata"` // absolute path of testdata/
	Drop     []string `json:"drop"`     // names left out of the ffmpeg listings
	// VAAPI maps a render node to what -init_hw_device vaapi=va:NODE -v
	// verbose prints.
	VAAPI map[string]string `json:"vaapi"`
	// Devices maps a device ("cuda:0", "vaapi:/dev/dri/renderD128",
	// "qsv:/dev/dri/renderD128") to its behaviour.
	Devices map[string]fakeDevice `json:"devices"`
	SMI     string                `json:"smi"`      // what nvidia-smi prints
	SMIFail string                `json:"smi_fail"` // printed instead, exit 9
	Log     string                `json:"log"`      // each run appends its argv here
}

type fakeDevice struct {
	Init     string                 `json:"init"`   // printed when the device fails to open (exit 1)
	Decode   string                 `json:"decode"` // printed when -hwaccel is asked (exit 1)
	Encoders map[string]fakeEncoder `json:"encoders"`
}

type fakeEncoder struct {
	Fail string `json:"fail"` // printed, exit 1
	// Sessions is how many outputs of the encoder open at once; 0 is no limit.
	// Beyond it the fake prints nvenc-session-limit.txt with the failing output.
	Sessions          int  `json:"sessions"`
	NoForcedKeyframes bool `json:"no_forced_keyframes"` // keyframe only on the first frame
	CPUMS             int  `json:"cpu_ms"`              // CPU time each run that opens it spins for
}

// fakeRun is one line of the log.
type fakeRun struct {
	Tool            string   `json:"tool"`
	Args            []string `json:"args"`
	CUDADeviceOrder string   `json:"cuda_device_order,omitempty"`
}

func loadScenario() scenario {
	var sc scenario
	data, err := os.ReadFile(os.Getenv(scenarioEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake: no scenario:", err)
		os.Exit(2)
	}
	if err := json.Unmarshal(data, &sc); err != nil {
		fmt.Fprintln(os.Stderr, "fake: bad scenario:", err)
		os.Exit(2)
	}
	return sc
}

func (sc scenario) log(tool string, args []string) {
	if sc.Log == "" {
		return
	}
	line, _ := json.Marshal(fakeRun{Tool: tool, Args: args, CUDADeviceOrder: os.Getenv("CUDA_DEVICE_ORDER")})
	f, err := os.OpenFile(sc.Log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.Write(append(line, '\n'))
}

func (sc scenario) print(name string, w *os.File, subst ...string) {
	data, err := os.ReadFile(filepath.Join(sc.Testdata, name))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake:", err)
		os.Exit(2)
	}
	s := string(data)
	for i := 0; i+1 < len(subst); i += 2 {
		s = strings.ReplaceAll(s, subst[i], subst[i+1])
	}
	_, _ = w.WriteString(s)
}

func fakeSMI() int {
	sc := loadScenario()
	sc.log("nvidia-smi", os.Args[1:])
	if sc.SMIFail != "" {
		sc.print(sc.SMIFail, os.Stdout)
		return 9
	}
	sc.print(sc.SMI, os.Stdout)
	return 0
}

func fakeFFmpeg(args []string) int {
	sc := loadScenario()
	sc.log("ffmpeg", args)
	argv := fakeArgs(args)
	if code, ok := sc.listing(argv); ok {
		return code
	}
	dev, code, done := sc.device(argv)
	if done {
		return code
	}
	noKeys, code, done := sc.encoders(argv, dev)
	if done {
		return code
	}
	return writeOutputs(argv, noKeys)
}

// fakeArgs is the fake ffmpeg's command line.
type fakeArgs []string

func (a fakeArgs) has(s string) bool { return contains(a, s) }

// listing plays -encoders, -hwaccels and -filters from testdata, without the
// names the scenario drops; ok is false for any other run.
func (sc scenario) listing(args fakeArgs) (code int, ok bool) {
	for _, l := range []string{"-encoders", "-hwaccels", "-filters"} {
		if !args.has(l) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(sc.Testdata, "ffmpeg", strings.TrimPrefix(l, "-")+".txt"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake:", err)
			return 2, true
		}
		for _, line := range strings.SplitAfter(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && contains(sc.Drop, f[1]) || len(f) == 1 && contains(sc.Drop, f[0]) {
				continue
			}
			_, _ = os.Stdout.WriteString(line)
		}
		return 0, true
	}
	return 0, false
}

// device opens the run's device: -init_hw_device cuda=hw:0 | vaapi=hw:NODE |
// vaapi=va:NODE + qsv=hw@va, and answers the VAAPI driver query. done is set
// when the run ends here, with code.
func (sc scenario) device(args fakeArgs) (dev string, code int, done bool) {
	var vaNode string
	for i, a := range args {
		if a != "-init_hw_device" || i+1 >= len(args) {
			continue
		}
		v := args[i+1]
		switch {
		case strings.HasPrefix(v, "cuda=hw:"):
			dev = "cuda:" + strings.TrimPrefix(v, "cuda=hw:")
		case strings.HasPrefix(v, "vaapi=hw:"):
			dev = "vaapi:" + strings.TrimPrefix(v, "vaapi=hw:")
		case strings.HasPrefix(v, "vaapi=va:"):
			vaNode = strings.TrimPrefix(v, "vaapi=va:")
		case v == "qsv=hw@va":
			dev = "qsv:" + vaNode
		}
	}
	if vaNode != "" && dev == "" && args.has("verbose") && !args.has("-i") {
		// The driver query: print what opening the node prints.
		if f, ok := sc.VAAPI[vaNode]; ok {
			sc.print(f, os.Stderr)
		} else {
			sc.print("ffmpeg/vaapi-no-display.txt", os.Stderr, "/dev/dri/renderD128", vaNode)
		}
		return dev, 1, true
	}
	if dev == "" {
		return dev, 0, false
	}
	d, ok := sc.Devices[dev]
	switch {
	case !ok:
		fmt.Fprintf(os.Stderr, "Device creation failed: -22.\nfake: no device %s\n", dev)
		return dev, 1, true
	case d.Init != "":
		sc.print(d.Init, os.Stderr)
		return dev, 1, true
	case args.has("-hwaccel") && d.Decode != "":
		sc.print(d.Decode, os.Stderr)
		return dev, 1, true
	}
	return dev, 0, false
}

// encoders opens the run's hardware encoders on dev, counting the outputs of
// each against its sessions. noKeys is set when one ignores forced keyframes.
func (sc scenario) encoders(args fakeArgs, dev string) (noKeys bool, code int, done bool) {
	count := map[string]int{}
	var order []string
	for i, a := range args {
		if a == "-c:v" && i+1 < len(args) {
			if count[args[i+1]] == 0 {
				order = append(order, args[i+1])
			}
			count[args[i+1]]++
		}
	}
	d := sc.Devices[dev]
	for _, name := range order {
		if name == "libx264" {
			continue
		}
		e, ok := d.Encoders[name]
		switch {
		case !ok:
			fmt.Fprintf(os.Stderr, "[%s @ 0x55d6b2c591c0] fake: %s cannot encode on %q\n", name, name, dev)
			return false, 1, true
		case e.Fail != "":
			sc.print(e.Fail, os.Stderr)
			return false, 1, true
		case e.Sessions > 0 && count[name] > e.Sessions:
			sc.print("ffmpeg/nvenc-session-limit.txt", os.Stderr, "%d", strconv.Itoa(e.Sessions))
			return false, 1, true
		}
		noKeys = noKeys || e.NoForcedKeyframes
		spin(time.Duration(e.CPUMS) * time.Millisecond)
	}
	return noKeys, 0, false
}

// spin uses CPU until this process has used d of it.
func spin(d time.Duration) {
	var ru syscall.Rusage
	for d > 0 && syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil && time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) < d {
	}
}

// writeOutputs ends a run that works: every framecrc output gets 30 frames,
// keyframes where asked (only the first with noKeys), and an .mp4 output a
// stand-in file.
func writeOutputs(args fakeArgs, noKeys bool) int {
	var seg []float64
	for i, a := range args {
		if a == "-force_key_frames" && i+1 < len(args) {
			s := strings.TrimSuffix(strings.TrimPrefix(args[i+1], "expr:gte(t,n_forced*"), ")")
			f, _ := strconv.ParseFloat(s, 64)
			seg = append(seg, f)
		}
	}
	out := 0
	for i, a := range args {
		if a == "-f" && i+3 < len(args) && args[i+1] == "framecrc" {
			every := 0
			if out < len(seg) && !noKeys {
				every = int(seg[out]*30 + 0.5)
			}
			if err := os.WriteFile(args[i+3], []byte(frameCRC(30, every)), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "fake:", err)
				return 1
			}
			out++
		}
	}
	if last := args[len(args)-1]; strings.HasSuffix(last, ".mp4") {
		if err := os.WriteFile(last, []byte("fake mp4"), 0o644); err != nil {
			return 1
		}
	}
	return 0
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// frameCRC writes framecrc output as ffmpeg 5.1 does for H.264 at 1/30:
// keyframes every `every` frames (only frame 0 when 0), ", F=0x0" on the others.
func frameCRC(frames, every int) string {
	var b strings.Builder
	b.WriteString("#software: Lavf59.27.100\n#tb 0: 1/30\n#media_type 0: video\n#codec_id 0: h264\n#dimensions 0: 1280x720\n#sar 0: 1/1\n")
	for n := range frames {
		fmt.Fprintf(&b, "0, %10d, %10d, %8d, %8d, 0x%08x", n-2, n, 1, 1000+n, n*7919)
		if n != 0 && (every == 0 || n%every != 0) {
			b.WriteString(", F=0x0")
		}
		b.WriteString(", S=1,        8\n")
	}
	return b.String()
}

// fake sets up the fake tools for one test and returns their paths and the log.
func fake(t *testing.T, sc scenario) (ffmpeg, smi, logPath string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ffmpeg, smi = filepath.Join(dir, "ffmpeg"), filepath.Join(dir, "nvidia-smi")
	for _, p := range []string{ffmpeg, smi} {
		if err := os.Symlink(exe, p); err != nil {
			t.Fatal(err)
		}
	}
	if sc.Testdata == "" {
		sc.Testdata, err = filepath.Abs("testdata")
		if err != nil {
			t.Fatal(err)
		}
	}
	sc.Log = filepath.Join(dir, "runs.jsonl")
	data, err := json.Marshal(sc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "scenario.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(scenarioEnv, path)
	if sc.SMI == "" && sc.SMIFail == "" {
		smi = filepath.Join(dir, "no-nvidia-smi")
	}
	return ffmpeg, smi, sc.Log
}

// runs reads the fake tools' log.
func runs(t *testing.T, path string) []fakeRun {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []fakeRun
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r fakeRun
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// sysDev is one GPU of a fake sysfs tree.
type sysDev struct {
	node   string // renderD128
	pci    string // 0000:01:00.0
	vendor string // 0x10de
	device string // 0x2504
	driver string // nvidia, i915, amdgpu
}

// fakeSysfs builds root/sys the way Linux lays it out: class/drm/renderDN links
// to the device's drm folder, whose device link leads to the PCI device with
// its vendor and device files and a driver link.
func fakeSysfs(t *testing.T, devs ...sysDev) string {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "sys", "class", "drm"), 0o755))
	for _, d := range devs {
		pciDir := filepath.Join(root, "sys", "devices", "pci0000:00", d.pci)
		drm := filepath.Join(pciDir, "drm", d.node)
		must(os.MkdirAll(drm, 0o755))
		must(os.WriteFile(filepath.Join(pciDir, "vendor"), []byte(d.vendor+"\n"), 0o644))
		must(os.WriteFile(filepath.Join(pciDir, "device"), []byte(d.device+"\n"), 0o644))
		drv := filepath.Join(root, "sys", "bus", "pci", "drivers", d.driver)
		must(os.MkdirAll(drv, 0o755))
		must(os.Symlink("../../../bus/pci/drivers/"+d.driver, filepath.Join(pciDir, "driver")))
		must(os.Symlink("../../../"+d.pci, filepath.Join(drm, "device")))
		must(os.Symlink("../../devices/pci0000:00/"+d.pci+"/drm/"+d.node, filepath.Join(root, "sys", "class", "drm", d.node)))
		// card0 and its connectors sit next to render nodes; the probe skips them.
		must(os.MkdirAll(filepath.Join(root, "sys", "class", "drm", "card0-HDMI-A-1"), 0o755))
	}
	return root
}

func writeFile(path, data string) error { return os.WriteFile(path, []byte(data), 0o644) }
