package ingest

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestLowWater checks an authorized publisher's socket: its receive low-water mark
// follows its bitrate (readPace of it), the buffer's reads call drained first, and
// the end of the connection is read at once whatever the mark.
func TestLowWater(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	c := newRTMPConn(server)
	c.buffered()
	drained := 0
	c.drained = func() { drained++ }

	const rate = 400 << 10 // bytes a second: a mark of 16 KiB
	go func() {
		chunk := make([]byte, rate/50)
		for range 65 { // 1.3 s
			if _, err := client.Write(chunk); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		_, _ = client.Write([]byte("tail"))
		_ = client.(*net.TCPConn).CloseWrite()
	}()
	// A read the mark held back past the end would wait for this deadline: it fails.
	_ = server.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	var got int
	for {
		n, err := c.Read(buf)
		got += n
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
	}
	if want := 65*(rate/50) + len("tail"); got != want {
		t.Errorf("read %d bytes, sent %d", got, want)
	}
	want := int(rate * readPace.Seconds())
	if c.mark < want/2 || c.mark > 2*want {
		t.Errorf("low-water mark %d, want about %d", c.mark, want)
	}
	var mark int
	_ = c.sys.Control(func(fd uintptr) { mark, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT) })
	if mark != c.mark {
		t.Errorf("the socket's SO_RCVLOWAT is %d, the connection's mark %d", mark, c.mark)
	}
	if drained == 0 {
		t.Error("drained was never called")
	}
}
