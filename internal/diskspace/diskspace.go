// Package diskspace measures the free space of the file system that holds a folder,
// reads the sizes operators write in flags ("10GB", "500MiB"), and watches free space
// against a reserve: what bounds a recording, which keeps every segment it is given
// until the disk would fill.
package diskspace

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrLow is returned (wrapped) by Check when free space is below the reserve.
var ErrLow = errors.New("free space below the reserve")

// Free returns the bytes available on the file system holding path to a process
// without privileges (statfs's f_bavail: without the blocks reserved for root, which a
// daemon running as root could still fill, but should not). A path that does not exist
// yet is measured at its nearest existing ancestor: a job folder about to be made is
// measured on the file system it will be made on.
func Free(path string) (uint64, error) {
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		var st syscall.Statfs_t
		err := syscall.Statfs(p, &st)
		if err == nil {
			return st.Bavail * uint64(st.Bsize), nil
		}
		if !errors.Is(err, syscall.ENOENT) || p == filepath.Dir(p) {
			return 0, fmt.Errorf("free space of %s: %w", p, err)
		}
	}
}

// Check returns an error wrapping ErrLow, with both figures, when the file system
// holding path has less than reserve bytes free; nil when it has enough or reserve is 0.
func Check(path string, reserve uint64) error {
	if reserve == 0 {
		return nil
	}
	free, err := Free(path)
	if err != nil {
		return err
	}
	if free < reserve {
		return fmt.Errorf("%w: %s free on the file system of %s, reserve %s", ErrLow, FormatSize(free), path, FormatSize(reserve))
	}
	return nil
}

// Units of ParseSize: decimal (powers of 1000, as disk makers and df -H count) and
// binary (powers of 1024, as df -h and most tools count). Matched without regard to
// case: "10gb" is 10 GB.
var units = []struct {
	name string
	size float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"kB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseSize reads a size in bytes: a number, optionally with a fraction, then optionally
// a unit: B, kB, MB, GB, TB (decimal: 10GB is 10 000 000 000 bytes) or KiB, MiB, GiB,
// TiB (binary: 500MiB is 524 288 000 bytes), in any case, with or without a space
// between. A bare number is bytes. The result is rounded down to a whole byte.
func ParseSize(s string) (uint64, error) {
	text := strings.TrimSpace(s)
	mult := 1.0
	for _, u := range units {
		if len(text) > len(u.name) && strings.EqualFold(text[len(text)-len(u.name):], u.name) {
			text, mult = strings.TrimSpace(text[:len(text)-len(u.name)]), u.size
			break
		}
	}
	n, err := strconv.ParseFloat(text, 64)
	switch {
	case err != nil || strings.ContainsAny(text, "xXpPeEinIN_"):
		// ParseFloat also takes hex, exponents, Inf, NaN and underscores: not sizes.
		return 0, fmt.Errorf("size %q: want a number and a unit, like 10GB or 500MiB", s)
	case n < 0:
		return 0, fmt.Errorf("size %q is negative", s)
	case n*mult >= math.MaxUint64:
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return uint64(n * mult), nil
}

// FormatSize writes n in decimal units with up to one decimal ("9.8 GB", "512 B"), the
// way ParseSize reads them back (to within the rounding).
func FormatSize(n uint64) string {
	for i := len(units) - 2; i >= 4; i-- { // TB down to kB
		if u := units[i]; float64(n) >= u.size {
			return strconv.FormatFloat(math.Floor(float64(n)/u.size*10)/10, 'f', -1, 64) + " " + u.name
		}
	}
	return strconv.FormatUint(n, 10) + " B"
}
