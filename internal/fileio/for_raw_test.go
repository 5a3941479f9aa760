//go:build linux && (amd64 || arm64)

package fileio

import (
	"syscall"
	"testing"

	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestFor (built only where rawSupported) checks that For picks raw calls for a folder in memory (or under one, not yet
// made) and blocking calls elsewhere.
func TestFor(t *testing.T) {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err != nil || !inMemory(uint32(st.Type)) {
		testmedia.Missing(t, "no tmpfs at /dev/shm (mount -t tmpfs tmpfs /dev/shm)")
	}
	if !For("/dev/shm").InMemory() || !For("/dev/shm/not/made/yet").InMemory() {
		t.Error("/dev/shm is tmpfs, yet For makes blocking calls there")
	}
	if err := syscall.Statfs(".", &st); err == nil && !inMemory(uint32(st.Type)) && For(".").InMemory() {
		t.Error("the source folder is on disk, yet For makes raw calls there")
	}
}
