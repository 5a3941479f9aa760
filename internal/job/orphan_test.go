package job

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/store"
)

// TestKillOrphans stores two jobs whose records name a running process called ffmpeg:
// one that writes into its job's folder (an ffmpeg a daemon killed with -9 left), one
// that writes elsewhere (a pid since reused). KillOrphans kills the first alone.
func TestKillOrphans(t *testing.T) {
	data := t.TempDir()
	st, err := store.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := filepath.Join(data, "out")
	// fake starts a shell named ffmpeg, in a process group of its own, with arg on its
	// command line; its channel closes when it exits.
	fake := func(arg string) (int, chan struct{}) {
		cmd := &exec.Cmd{Path: "/bin/sh", Args: []string{"ffmpeg", "-c", "sleep 60; :", arg},
			SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-exited })
		return cmd.Process.Pid, exited
	}
	orphan, orphanExited := fake(filepath.Join(out, "cam", "360p", "seg_%d.m4s"))
	other, otherExited := fake(filepath.Join(t.TempDir(), "x"))
	for id, pid := range map[string]int{"cam": orphan, "vod": other} {
		raw, _ := json.Marshal(map[string]any{"version": storedVersion, "pid": pid, "view": map[string]any{"id": id, "state": "running"}})
		if err := st.PutJob(id, json.RawMessage(raw)); err != nil {
			t.Fatal(err)
		}
	}
	m := testManager(t, Config{Output: out, Store: st})
	if killed := m.KillOrphans(); !slices.Equal(killed, []string{"cam"}) {
		t.Errorf("killed the ffmpeg of %v, want [cam]", killed)
	}
	select {
	case <-orphanExited:
	case <-time.After(5 * time.Second):
		t.Error("the orphan still runs")
	}
	select {
	case <-otherExited:
		t.Error("the process that writes elsewhere was killed")
	case <-time.After(100 * time.Millisecond):
	}
}
