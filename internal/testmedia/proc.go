package testmedia

import (
	"os"
	"strconv"
	"strings"
)

// Stat returns the fields of /proc/<pid>/stat that follow the command name: the
// state (field 3 of proc(5)) first. ok is false when there is no such process.
func Stat(pid int) (fields []string, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, false
	}
	// The command name is in parentheses and may hold spaces: split after it.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return f, len(f) > 0
}

// Running reports whether pid is a process that has not exited (a zombie has).
func Running(pid int) bool {
	f, ok := Stat(pid)
	return ok && f[0] != "Z"
}
