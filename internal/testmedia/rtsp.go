package testmedia

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"
)

// rtspPath is the one path the RTSP relay serves.
const rtspPath = "/cam"

// StartRTSP serves a live RTSP stream at rtsp://127.0.0.1:<port>/cam until
// the test ends, and returns once a publisher is attached and sending, so
// the stream can be read.
//
// The server is a relay written with gortsplib, running in the test
// process: one publisher pushes to /cam with ANNOUNCE and RECORD, and any
// number of readers pull with DESCRIBE, SETUP and PLAY; DESCRIBE answers 404
// while no publisher is attached. It speaks RTP over TCP (interleaved) only:
// readers that try UDP first, as ffmpeg does, are refused that transport and
// fall back to TCP. The publisher is `ffmpeg -re -f lavfi ... -f rtsp
// -rtsp_transport tcp`, restarted whenever it exits until the test ends.
// Pause and Resume stop and restart the publisher; the server itself stays.
func StartRTSP(t testing.TB, opts SourceOptions) *Source {
	t.Helper()
	return startRTSP(t, opts, false)
}

// StartRTSPUDP is StartRTSP with a server that sends RTP to readers over UDP
// only, as VLC's RTSP server and many cameras do: a reader's SETUP that asks
// for RTP interleaved over TCP is answered 461 Unsupported Transport. The
// server's own RTP and RTCP ports are a pair on 127.0.0.1; readers open theirs.
// The publisher still records over TCP.
func StartRTSPUDP(t testing.TB, opts SourceOptions) *Source {
	t.Helper()
	return startRTSP(t, opts, true)
}

func startRTSP(t testing.TB, opts SourceOptions, udpOnly bool) *Source {
	t.Helper()
	RequireFFmpeg(t)
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		t.Fatalf("testmedia: rtsp source options: %v", err)
		return nil
	}
	relay := &rtspRelay{udpOnly: udpOnly}
	relay.server = &gortsplib.Server{
		Handler:     relay,
		RTSPAddress: "127.0.0.1:0",
	}
	if udpOnly {
		rtp, rtcp, err := udpPair()
		if err != nil {
			t.Fatalf("testmedia: rtsp server's udp ports: %v", err)
			return nil
		}
		// The server opens the pair by address; it gets the sockets already bound,
		// so that no other process can take a port between the choice and the use.
		conns := map[string]net.PacketConn{rtp.LocalAddr().String(): rtp, rtcp.LocalAddr().String(): rtcp}
		relay.server.UDPRTPAddress = rtp.LocalAddr().String()
		relay.server.UDPRTCPAddress = rtcp.LocalAddr().String()
		relay.server.ListenPacket = func(network, address string) (net.PacketConn, error) {
			if pc, ok := conns[address]; ok {
				delete(conns, address) // the server closes it
				return pc, nil
			}
			return nil, fmt.Errorf("testmedia: unexpected udp listen on %s %s", network, address)
		}
	}
	if err := relay.server.Start(); err != nil {
		t.Fatalf("testmedia: start rtsp server: %v", err)
		return nil
	}
	url := "rtsp://" + relay.server.NetListener().Addr().String() + rtspPath
	p := &rtspPublisher{t: t, opts: opts, url: url, relay: relay}
	return newSource(t, url, p, relay.server.Close)
}

// udpPair binds two consecutive UDP ports on 127.0.0.1, the first even, as an
// RTSP server's RTP and RTCP ports must be.
func udpPair() (rtp, rtcp net.PacketConn, err error) {
	for range 100 {
		a, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		port := a.LocalAddr().(*net.UDPAddr).Port
		if port%2 != 0 || port == 65534 {
			a.Close()
			continue
		}
		b, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(port+1))
		if err != nil {
			a.Close()
			continue
		}
		return a, b, nil
	}
	return nil, nil, fmt.Errorf("no free pair of consecutive udp ports after 100 tries")
}

// rtspRelay is the gortsplib handler: it forwards the publisher's RTP
// packets to every reader.
type rtspRelay struct {
	server  *gortsplib.Server
	udpOnly bool // readers' SETUPs for RTP over TCP get 461

	mu        sync.Mutex
	stream    *gortsplib.ServerStream // nil while no publisher records
	publisher *gortsplib.ServerSession
	packets   int // RTP packets relayed from the current publisher
}

// readable reports whether a publisher records and has sent a packet.
func (r *rtspRelay) readable() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stream != nil && r.packets > 0
}

// attached reports whether a publisher session exists.
func (r *rtspRelay) attached() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.publisher != nil
}

// OnSessionClose detaches a closing publisher and disconnects its readers.
func (r *rtspRelay) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ctx.Session != r.publisher {
		return
	}
	if r.stream != nil {
		r.stream.Close()
	}
	r.stream, r.publisher, r.packets = nil, nil, 0
}

// OnDescribe answers readers with the publisher's stream, or 404.
func (r *rtspRelay) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ctx.Path != rtspPath || r.stream == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, r.stream, nil
}

// OnAnnounce accepts a publisher on rtspPath; a new one replaces the old.
func (r *rtspRelay) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	if ctx.Path != rtspPath {
		return &base.Response{StatusCode: base.StatusNotFound}, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.publisher != nil {
		if r.stream != nil {
			r.stream.Close()
		}
		r.publisher.Close()
		r.stream, r.publisher, r.packets = nil, nil, 0
	}
	r.publisher = ctx.Session
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnSetup accepts the publisher's SETUPs, and readers' while a stream exists
// (with udpOnly, only those asking for UDP).
func (r *rtspRelay) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	if r.udpOnly && ctx.Transport.Protocol == gortsplib.ProtocolTCP {
		return &base.Response{StatusCode: base.StatusUnsupportedTransport}, nil, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ctx.Path != rtspPath || r.stream == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, r.stream, nil
}

// OnPlay lets readers play.
func (r *rtspRelay) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnRecord creates the stream readers get and starts relaying to it.
func (r *rtspRelay) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ctx.Session != r.publisher {
		return &base.Response{StatusCode: base.StatusBadRequest}, nil
	}
	stream := &gortsplib.ServerStream{Server: r.server, Desc: ctx.Session.AnnouncedDescription()}
	if err := stream.Initialize(); err != nil {
		return &base.Response{StatusCode: base.StatusInternalServerError}, fmt.Errorf("initialize stream: %w", err)
	}
	r.stream = stream
	session := ctx.Session
	session.OnPacketRTPAny(func(medi *description.Media, _ format.Format, pkt *rtp.Packet) {
		r.mu.Lock()
		if r.publisher == session {
			r.packets++
		}
		r.mu.Unlock()
		// A closed stream drops packets; an error here only means that.
		_ = stream.WritePacketRTP(medi, pkt)
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// rtspPublisher runs ffmpeg publishing to the relay, restarting it when it
// exits.
type rtspPublisher struct {
	t     testing.TB
	opts  SourceOptions
	url   string
	relay *rtspRelay

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started pidSet
}

func (p *rtspPublisher) pids() []int { return p.started.list() }

// start runs the publisher loop and waits until the stream is readable.
func (p *rtspPublisher) start() error {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	failed := make(chan string, 1) // stderr of the first failed run
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.loop(ctx, failed)
	}()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var lastFailure string
	for !p.relay.readable() {
		select {
		case <-deadline:
			return fmt.Errorf("no publisher on %s after 20s; last ffmpeg stderr:\n%s", p.url, lastFailure)
		case lastFailure = <-failed:
		case <-tick.C:
		}
	}
	return nil
}

// stop kills the publisher and waits until the relay has detached it.
func (p *rtspPublisher) stop() {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	for deadline := time.Now().Add(5 * time.Second); p.relay.attached() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}

// loop runs the publishing ffmpeg until ctx ends, restarting it after a
// short pause whenever it exits, and offers the stderr of failed runs on
// failed without blocking.
func (p *rtspPublisher) loop(ctx context.Context, failed chan<- string) {
	args := append(liveArgs(p.opts), "-f", "rtsp", "-rtsp_transport", "tcp", p.url)
	for ctx.Err() == nil {
		cmd := groupCommand(ctx, "ffmpeg", args...)
		var stderr tail
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			select {
			case failed <- err.Error():
			default:
			}
		} else {
			p.started.add(cmd.Process.Pid)
			err := cmd.Wait()
			if ctx.Err() == nil {
				msg := fmt.Sprintf("%v\n%s", err, stderr.String())
				p.t.Logf("testmedia: rtsp publisher exited, restarting: %s", msg)
				select {
				case failed <- msg:
				default:
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}
