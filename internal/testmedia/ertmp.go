package testmedia

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"slices"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// publishERTMP is Publish of HEVC over Enhanced RTMP, as OBS 29.1 and later send it and
// ffmpeg 5.1 cannot: ffmpeg encodes the stream to MPEG-TS on a pipe, and gortmplib's
// client publishes its access units to rawURL (rtmp://HOST/APP/KEY) from the first
// keyframe that carries the parameter sets.
func publishERTMP(t testing.TB, rawURL string, o SourceOptions) *Publisher {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	// gortmplib's client takes the stream key from the fragment.
	u.Path, u.Fragment = path.Dir(u.Path), path.Base(u.Path)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := groupCommand(ctx, "ffmpeg", slices.Concat(liveArgs(o), []string{"-f", "mpegts", "pipe:1"})...)
	p := &Publisher{t: t, done: make(chan struct{}), stderr: &tail{}, cancel: cancel}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		cancel()
		t.Fatalf("start publisher: %v", err)
	}
	p.pid = cmd.Process.Pid
	go func() {
		relayErr := relayERTMP(ctx, out, u)
		cancel() // the server ended the session: so does the encoder
		p.err = cmd.Wait()
		if relayErr != nil && !errors.Is(relayErr, io.EOF) {
			p.err = relayErr
		}
		close(p.done)
	}()
	t.Cleanup(p.Kill)
	return p
}

// relayERTMP publishes the H.265 and AAC of the MPEG-TS r carries to u.
func relayERTMP(ctx context.Context, r io.Reader, u *url.URL) error {
	tr := &mpegts.Reader{R: mpegts.NewBufferedReader(wholePackets{r})}
	if err := tr.Initialize(); err != nil {
		return fmt.Errorf("read the encoder's mpeg-ts: %w", err)
	}
	tr.OnDecodeError(func(error) {})
	e := &ertmp{ctx: ctx, url: u}
	var vt, at *mpegts.Track
	for _, t := range tr.Tracks() {
		switch c := t.Codec.(type) {
		case *tscodecs.H265:
			vt = t
		case *tscodecs.MPEG4Audio:
			at, e.aac = t, &codecs.MPEG4Audio{Config: &c.Config}
		}
	}
	if vt == nil || at == nil {
		return errors.New("the encoder's mpeg-ts has no h265 or no aac track")
	}
	tr.OnDataH265(vt, e.video)
	tr.OnDataMPEG4Audio(at, e.audio)
	defer e.close()
	for {
		if err := tr.Read(); err != nil {
			return err
		}
	}
}

// ertmp is the RTMP side of publishERTMP: a client connected at the first keyframe.
type ertmp struct {
	ctx    context.Context
	url    *url.URL
	aac    *codecs.MPEG4Audio
	client *gortmplib.Client
	w      *gortmplib.Writer
	vt, at *gortmplib.Track
	base   int64 // the dts of the first keyframe: RTMP's time 0
}

func ticksToDuration(t int64) time.Duration { return time.Duration(t) * time.Second / 90000 }

func (e *ertmp) video(pts, dts int64, au [][]byte) error {
	if e.w == nil {
		ps := map[h265.NALUType][]byte{}
		for _, n := range au {
			if len(n) > 0 {
				ps[h265.NALUType((n[0]>>1)&0b111111)] = n
			}
		}
		vps, sps, pps := ps[h265.NALUType_VPS_NUT], ps[h265.NALUType_SPS_NUT], ps[h265.NALUType_PPS_NUT]
		if vps == nil || sps == nil || pps == nil {
			return nil // to the first keyframe with its parameter sets
		}
		if err := e.connect(&codecs.H265{VPS: vps, SPS: sps, PPS: pps}); err != nil {
			return err
		}
		e.base = dts
	}
	return e.w.WriteH265(e.vt, ticksToDuration(pts-e.base), ticksToDuration(dts-e.base), au)
}

func (e *ertmp) audio(pts int64, aus [][]byte) error {
	if e.w == nil {
		return nil
	}
	for i, au := range aus { // 1024 samples each
		t := pts - e.base + int64(i)*1024*90000/int64(e.aac.Config.SampleRate)
		if t < 0 {
			continue
		}
		if err := e.w.WriteMPEG4Audio(e.at, ticksToDuration(t), au); err != nil {
			return err
		}
	}
	return nil
}

func (e *ertmp) connect(video *codecs.H265) error {
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	e.client = &gortmplib.Client{URL: e.url, Publish: true}
	if err := e.client.Initialize(ctx); err != nil {
		e.client = nil
		return fmt.Errorf("rtmp publish: %w", err)
	}
	e.vt, e.at = &gortmplib.Track{Codec: video}, &gortmplib.Track{Codec: e.aac}
	w := &gortmplib.Writer{Conn: e.client, Tracks: []*gortmplib.Track{e.vt, e.at}}
	if err := w.Initialize(); err != nil {
		return fmt.Errorf("rtmp tracks: %w", err)
	}
	e.w = w
	return nil
}

func (e *ertmp) close() {
	if e.client != nil {
		e.client.Close()
	}
}

// wholePackets reads whole MPEG-TS packets (188 bytes) from a stream, as mediacommon's
// reader wants them: from a pipe, a read may end anywhere.
type wholePackets struct{ r io.Reader }

func (w wholePackets) Read(p []byte) (int, error) {
	return io.ReadFull(w.r, p[:len(p)/188*188])
}
