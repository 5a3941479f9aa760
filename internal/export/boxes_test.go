package export

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// box returns a box of type typ around payload.
func box(typ string, payload ...[]byte) []byte {
	body := bytes.Join(payload, nil)
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
	return append(append(b, typ...), body...)
}

func tfdt(version byte, t uint64) []byte {
	p := []byte{version, 0, 0, 0}
	if version == 1 {
		return box("tfdt", binary.BigEndian.AppendUint64(p, t))
	}
	return box("tfdt", binary.BigEndian.AppendUint32(p, uint32(t)))
}

// TestShiftTfdt shifts the tfdt of every traf of every moof, of either version, and
// nothing else; times out of range and malformed boxes are errors.
func TestShiftTfdt(t *testing.T) {
	mdat := box("mdat", []byte("tfdt tfdt"))
	for _, tc := range []struct {
		name      string
		in, want  []byte
		shift     int64
		wantError string
	}{
		{name: "two fragments, both versions",
			in:    append(append(box("styp"), box("moof", box("mfhd"), box("traf", box("tfhd"), tfdt(1, 1000), box("trun")))...), append(mdat, append(box("moof", box("traf", tfdt(0, 70))), mdat...)...)...),
			want:  append(append(box("styp"), box("moof", box("mfhd"), box("traf", box("tfhd"), tfdt(1, 1500), box("trun")))...), append(mdat, append(box("moof", box("traf", tfdt(0, 570))), mdat...)...)...),
			shift: 500},
		{name: "backwards", in: box("moof", box("traf", tfdt(1, 1000))), want: box("moof", box("traf", tfdt(1, 10))), shift: -990},
		{name: "below zero", in: box("moof", box("traf", tfdt(1, 1000))), shift: -1001, wantError: "out of range"},
		{name: "past version 0", in: box("moof", box("traf", tfdt(0, 1<<32-10))), shift: 10, wantError: "version 0"},
		{name: "short tfdt", in: box("moof", box("traf", box("tfdt", []byte{1, 0, 0, 0, 1}))), shift: 1, wantError: "tfdt of 5 bytes"},
		{name: "empty tfdt", in: box("moof", box("traf", box("tfdt"))), shift: 1, wantError: "empty tfdt"},
		{name: "box past the end", in: box("moof", box("traf", tfdt(1, 1)))[:20], shift: 1, wantError: "bytes in"},
		{name: "trailing bytes", in: append(box("moof"), 0, 0, 0), shift: 1, wantError: "after the last box"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Clone(tc.in)
			err := shiftTfdt(data, tc.shift)
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Errorf("err = %v, want one saying %q", err, tc.wantError)
				}
				return
			}
			if err != nil || !bytes.Equal(data, tc.want) {
				t.Errorf("shifted to\n%x, %v\nwant\n%x", data, err, tc.want)
			}
		})
	}
}

// TestArgs pins the remux's argv: -copyts before the inputs, one -f mov input with a
// deep queue per pipe from descriptor 3, every stream copied, faststart, mp4 whatever out's name.
func TestArgs(t *testing.T) {
	got := strings.Join(Args(2, "/out/.talk.mp4.1.part"), " ")
	want := "-hide_banner -nostdin -loglevel error -nostats -progress pipe:1 -stats_period 0.5 -copyts" +
		" -thread_queue_size 1024 -f mov -i pipe:3 -thread_queue_size 1024 -f mov -i pipe:4 -map 0:0 -map 1:0 -c copy -movflags +faststart -f mp4 -y /out/.talk.mp4.1.part"
	if got != want {
		t.Errorf("Args =\n%s\nwant\n%s", got, want)
	}
}
