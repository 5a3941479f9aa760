package supervise

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

func TestTail(t *testing.T) {
	long := strings.Repeat("x", MaxLineLength+500)
	tests := []struct {
		name   string
		n      int
		writes []string
		want   []string
	}{
		{name: "nothing written", n: 3, want: []string{}},
		{name: "keeps the last n", n: 2, writes: []string{"a\nb\nc\n"}, want: []string{"b", "c"}},
		{name: "lines split across writes", n: 3, writes: []string{"Conn", "ection ref", "used\nnext"}, want: []string{"Connection refused", "next"}},
		{name: "partial last line counts", n: 2, writes: []string{"a\nb\nc"}, want: []string{"b", "c"}},
		{name: "carriage returns end lines", n: 5, writes: []string{"frame=1\rframe=2\r\nend\n"}, want: []string{"frame=1", "frame=2", "end"}},
		{name: "empty lines dropped", n: 5, writes: []string{"\n\na\n\n\nb\n\n"}, want: []string{"a", "b"}},
		{name: "long line cut", n: 2, writes: []string{long + "\nafter\n"}, want: []string{long[:MaxLineLength] + "…", "after"}},
		{name: "long line cut across writes", n: 2, writes: []string{long[:700], long[700:], "\n"}, want: []string{long[:MaxLineLength] + "…"}},
		{name: "zero keeps one", n: 0, writes: []string{"a\nb\n"}, want: []string{"b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tail := NewTail(tt.n)
			for _, w := range tt.writes {
				n, err := tail.Write([]byte(w))
				if err != nil || n != len(w) {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if got := tail.Lines(); !slices.Equal(got, tt.want) {
				t.Errorf("Lines() = %q, want %q", got, tt.want)
			}
			wantLast := ""
			if len(tt.want) > 0 {
				wantLast = tt.want[len(tt.want)-1]
			}
			if got := tail.Last(); got != wantLast {
				t.Errorf("Last() = %q, want %q", got, wantLast)
			}
		})
	}
}

func TestTailCutKeepsUTF8Valid(t *testing.T) {
	tail := NewTail(1)
	// 'é' is two bytes; an odd offset puts the cut inside one.
	fmt.Fprintf(tail, "%s%s\n", "a", strings.Repeat("é", MaxLineLength))
	if got := tail.Last(); !utf8.ValidString(got) || len(got) > MaxLineLength+len("…") {
		t.Errorf("cut line is %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
}

func TestTailConcurrent(t *testing.T) {
	tail := NewTail(5)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				fmt.Fprintf(tail, "writer %d line %d\n", w, i)
				_ = tail.Lines()
				_ = tail.Last()
			}
		}()
	}
	wg.Wait()
	lines := tail.Lines()
	if len(lines) != 5 {
		t.Fatalf("kept %d lines, want 5: %q", len(lines), lines)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "writer ") {
			t.Errorf("mangled line %q", l)
		}
	}
}
