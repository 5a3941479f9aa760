package manifest

import (
	"bytes"
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestSameMaster changes every field of a presentation and of its tracks, one at a
// time, by reflection: a field the master playlist does not show must leave SameMaster
// true and the rendering byte for byte the same; any other field, including one added
// to the types later, must make SameMaster false.
func TestSameMaster(t *testing.T) {
	ignoredPresentation := []string{"Live", "Ended", "AvailabilityStart", "PublishTime", "SegmentDuration", "Window"}
	ignoredTrack := []string{"Segments", "DiscontinuitySequence", "SourceTrack"}
	for _, gc := range goldenCases() {
		base := &gc.p
		want, err := RenderMaster(base)
		if err != nil {
			t.Fatalf("%s: %v", gc.name, err)
		}
		if !SameMaster(base, clonePresentation(base)) {
			t.Errorf("%s: a copy is not the same", gc.name)
		}
		check := func(what string, p *Presentation, ignored bool) {
			t.Helper()
			if got := SameMaster(base, p); got != ignored {
				t.Errorf("%s: %s changed: SameMaster = %v, want %v", gc.name, what, got, ignored)
			}
			if !ignored {
				return
			}
			data, err := RenderMaster(p)
			if err != nil || !bytes.Equal(data, want) {
				t.Errorf("%s: %s changed, which SameMaster ignores, yet the master changed (err %v):\n%s", gc.name, what, err, data)
			}
		}
		pt := reflect.TypeFor[Presentation]()
		for i := range pt.NumField() {
			f := pt.Field(i)
			if f.Name == "Video" || f.Name == "Audio" {
				continue // their tracks, below
			}
			p := clonePresentation(base)
			change(t, reflect.ValueOf(p).Elem().Field(i))
			check("Presentation."+f.Name, p, slices.Contains(ignoredPresentation, f.Name))
		}
		tt := reflect.TypeFor[Track]()
		for _, video := range []bool{true, false} {
			n := len(base.Audio)
			if video {
				n = len(base.Video)
			}
			for k := range n {
				for i := range tt.NumField() {
					p := clonePresentation(base)
					tr := &p.Audio
					if video {
						tr = &p.Video
					}
					change(t, reflect.ValueOf(&(*tr)[k]).Elem().Field(i))
					name := tt.Field(i).Name
					check((*tr)[k].Name+"."+name, p, slices.Contains(ignoredTrack, name))
				}
			}
		}
		p := clonePresentation(base)
		if len(p.Video) > 0 {
			p.Video = p.Video[1:]
			check("a video track less", p, false)
		}
	}
}

// change gives v another value of its type.
func change(t *testing.T, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int64:
		step := int64(1)
		if v.Type() == reflect.TypeFor[time.Duration]() {
			step = int64(time.Second)
		}
		v.SetInt(v.Int() + step)
	case reflect.Uint32, reflect.Uint64:
		v.SetUint(v.Uint() + 1)
	case reflect.Slice:
		if v.Len() > 1 {
			v.Set(v.Slice(1, v.Len()))
		} else {
			v.Set(reflect.Zero(v.Type()))
		}
	default:
		if tm, ok := v.Interface().(time.Time); ok {
			v.Set(reflect.ValueOf(tm.Add(time.Second)))
			return
		}
		t.Fatalf("no way to change a %s: teach change", v.Type())
	}
}

func clonePresentation(p *Presentation) *Presentation {
	c := *p
	c.Video = slices.Clone(p.Video)
	c.Audio = slices.Clone(p.Audio)
	return &c
}
