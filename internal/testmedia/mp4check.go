package testmedia

import (
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
)

// Samples returns the size and the decode time (in seconds) of every sample of the
// CMAF media segments, in order, as their trun boxes give them with the defaults of
// the init segment init, and the end of the last one: what an MP4 remuxed from them
// without re-encoding holds, sample for sample.
func Samples(t testing.TB, init string, segments []string) (sizes []int, times []float64, end float64) {
	t.Helper()
	in := decodeMP4(t, init)
	trex := in.Init.Moov.Mvex.Trex
	ts := float64(in.Init.Moov.Trak.Mdia.Mdhd.Timescale)
	for _, path := range segments {
		for _, seg := range decodeMP4(t, path).Segments {
			for _, frag := range seg.Fragments {
				full, err := frag.GetFullSamples(trex)
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				for _, s := range full {
					sizes = append(sizes, int(s.Size))
					times = append(times, float64(s.DecodeTime)/ts)
					end = float64(s.DecodeTime+uint64(s.Dur)) / ts
				}
			}
		}
	}
	return sizes, times, end
}

func decodeMP4(t testing.TB, path string) *mp4.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := mp4.DecodeFile(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// Probed is what ffprobe says of a media file: its duration, streams and packets.
type Probed struct {
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
	Streams []struct {
		CodecType string `json:"codec_type"`
		CodecName string `json:"codec_name"`
	} `json:"streams"`
	Packets []struct {
		Stream int    `json:"stream_index"`
		Size   string `json:"size"`
		DTS    string `json:"dts_time"`
	} `json:"packets"`
}

// Probe runs ffprobe on the file at path.
func Probe(t testing.TB, path string) Probed {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-of", "json", "-show_format", "-show_streams",
		"-show_entries", "packet=stream_index,size,dts_time", "-show_packets", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p Probed
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	return p
}

// Duration is the file's duration in seconds.
func (p Probed) Duration() float64 {
	d, _ := strconv.ParseFloat(p.Format.Duration, 64)
	return d
}

// Stream returns the sizes and decode times of stream i's packets.
func (p Probed) Stream(i int) (sizes []int, times []float64) {
	for _, pk := range p.Packets {
		if pk.Stream == i {
			n, _ := strconv.Atoi(pk.Size)
			ts, _ := strconv.ParseFloat(pk.DTS, 64)
			sizes, times = append(sizes, n), append(times, ts)
		}
	}
	return sizes, times
}
