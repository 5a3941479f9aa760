package ingest

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestLowWater checks an authorized publisher's socket: its receive low-water mark
// follows its bitrate (readPace of it), the buffer's reads call drained first, a
// publisher whose bitrate falls far below the mark is read on (it is ended after 1 s
// of silence here, and waiting for the mark would take 5 s), and the end of the
// connection is read at once whatever the mark.
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
	c.buffered(time.Second)
	drained := 0
	c.drained = func() { drained++ }

	const rate = 400 << 10 // bytes a second: a mark of 16 KiB
	const fast, slow, trickle = 65, 20, 300
	go func() {
		defer client.(*net.TCPConn).CloseWrite()
		chunk := make([]byte, rate/50)
		for range fast { // 1.3 s at rate
			if _, err := client.Write(chunk); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		for range slow { // then 3 KB/s for 2 s
			if _, err := client.Write(chunk[:trickle]); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		_, _ = client.Write([]byte("tail"))
	}()
	buf := make([]byte, 4096)
	var got, high int
	for {
		n, err := c.Read(buf)
		got += n
		high = max(high, c.mark) // set from the first second's bitrate
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
	}
	if want := fast*(rate/50) + slow*trickle + len("tail"); got != want {
		t.Errorf("read %d bytes, sent %d", got, want)
	}
	if want := int(rate * readPace.Seconds()); high < want/2 || high > 2*want {
		t.Errorf("low-water mark %d at %d bytes a second, want about %d", high, rate, want)
	}
	var set int
	_ = c.sys.Control(func(fd uintptr) { set, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT) })
	if m := c.mark; set != m || m > minLowWater {
		t.Errorf("the socket's SO_RCVLOWAT is %d, the connection's mark %d: want them equal, and no mark at 3 KB/s", set, m)
	}
	if drained == 0 {
		t.Error("drained was never called")
	}
}
