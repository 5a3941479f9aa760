package export

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// eachBox calls fn with the type and the payload (after the header) of each box in
// data, a sequence of whole boxes. The payload shares data's memory: what fn writes
// into it changes data. A box that overruns data is an error.
func eachBox(data []byte, fn func(typ string, payload []byte) error) error {
	for len(data) > 0 {
		if len(data) < 8 {
			return fmt.Errorf("%d bytes after the last box", len(data))
		}
		size, header := uint64(binary.BigEndian.Uint32(data)), uint64(8)
		switch size {
		case 0: // to the end
			size = uint64(len(data))
		case 1: // 64-bit size after the type
			if len(data) < 16 {
				return errors.New("truncated box header")
			}
			size, header = binary.BigEndian.Uint64(data[8:]), 16
		}
		if size < header || size > uint64(len(data)) {
			return fmt.Errorf("box %q of %d bytes in %d", data[4:8], size, len(data))
		}
		if err := fn(string(data[4:8]), data[header:size]); err != nil {
			return err
		}
		data = data[size:]
	}
	return nil
}

// findBox returns the payload of the first box along path (moov, trak, ...) in data,
// or nil when there is none.
func findBox(data []byte, path ...string) ([]byte, error) {
	var found []byte
	err := eachBox(data, func(typ string, payload []byte) error {
		if found != nil || typ != path[0] {
			return nil
		}
		if len(path) == 1 {
			found = payload
			return nil
		}
		var err error
		found, err = findBox(payload, path[1:]...)
		return err
	})
	return found, err
}

// shiftTfdt adds shift to the baseMediaDecodeTime of every track fragment of the media
// segment data, in place.
func shiftTfdt(data []byte, shift int64) error {
	if shift == 0 {
		return nil
	}
	return eachBox(data, func(typ string, moof []byte) error {
		if typ != "moof" {
			return nil
		}
		return eachBox(moof, func(typ string, traf []byte) error {
			if typ != "traf" {
				return nil
			}
			return eachBox(traf, func(typ string, tfdt []byte) error {
				if typ != "tfdt" {
					return nil
				}
				return shiftTime(tfdt, shift)
			})
		})
	})
}

// shiftTime adds shift to the time in a tfdt's payload: 64 bits in version 1, 32 in
// version 0.
func shiftTime(tfdt []byte, shift int64) error {
	switch {
	case len(tfdt) == 0:
		return errors.New("empty tfdt")
	case len(tfdt) >= 12 && tfdt[0] == 1:
		t := int64(binary.BigEndian.Uint64(tfdt[4:]))
		if t+shift < 0 || t < 0 {
			return fmt.Errorf("tfdt %d shifted by %d is out of range", t, shift)
		}
		binary.BigEndian.PutUint64(tfdt[4:], uint64(t+shift))
	case len(tfdt) >= 8 && tfdt[0] == 0:
		t := int64(binary.BigEndian.Uint32(tfdt[4:]))
		if t+shift < 0 || t+shift > math.MaxUint32 {
			return fmt.Errorf("tfdt %d shifted by %d is out of range of a version 0 tfdt", t, shift)
		}
		binary.BigEndian.PutUint32(tfdt[4:], uint32(t+shift))
	default:
		return fmt.Errorf("tfdt of %d bytes, version %d", len(tfdt), tfdt[0])
	}
	return nil
}
