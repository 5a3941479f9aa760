package deploy

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// dockerfile is the part of a Dockerfile the tests read: global ARGs and stages.
type dockerfile struct {
	args   map[string]string // ARG defaults before the first FROM
	stages []*stage
}

// stage is one FROM and what follows it.
type stage struct {
	name, from  string      // "AS name" (may be ""), and the image or stage it starts from
	line        int         // of the FROM
	env         [][2]string // ENV name=value, in order
	run         []string    // RUN commands
	user        string
	workdir     string
	volumes     []string
	healthcheck string   // the HEALTHCHECK instruction's arguments
	entrypoint  []string // exec form
	copies      [][]string
}

// instruction is one Dockerfile instruction, its continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

// instructions splits a Dockerfile into instructions: comment lines (also inside a
// continuation) are dropped and lines ending in a backslash continue on the next.
func instructions(text string) []instruction {
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if body, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), "\\"); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		out = append(out, instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// words splits shell-like text into words, honouring single and double quotes and
// backslash escapes (enough for ENV values and simple RUN commands).
func words(s string) ([]string, error) {
	var out []string
	var w strings.Builder
	in := false // inside a word
	var quote rune
	esc := false
	for _, r := range s {
		switch {
		case esc:
			w.WriteRune(r)
			esc = false
		case r == '\\' && quote != '\'':
			esc, in = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				w.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, in = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if in {
				out = append(out, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if quote != 0 || esc {
		return nil, fmt.Errorf("unterminated quote or escape in %q", s)
	}
	if in {
		out = append(out, w.String())
	}
	return out, nil
}

var argRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

// parseDockerfile reads the instructions the tests need; others are refused, so
// that a new one is looked at rather than ignored.
func parseDockerfile(text string) (*dockerfile, error) {
	d := &dockerfile{args: map[string]string{}}
	var st *stage
	for _, in := range instructions(text) {
		where := func(err error) error { return fmt.Errorf("line %d: %s: %w", in.line, in.cmd, err) }
		if st == nil && in.cmd != "ARG" && in.cmd != "FROM" {
			return nil, where(fmt.Errorf("before the first FROM"))
		}
		switch in.cmd {
		case "ARG":
			name, def, _ := strings.Cut(in.args, "=")
			if st == nil {
				d.args[name] = def
			}
		case "FROM":
			w, err := words(in.args)
			if err != nil {
				return nil, where(err)
			}
			st = &stage{line: in.line, from: argRef.ReplaceAllStringFunc(w[0], func(ref string) string {
				return d.args[argRef.FindStringSubmatch(ref)[1]]
			})}
			if len(w) == 3 && strings.EqualFold(w[1], "AS") {
				st.name = w[2]
			} else if len(w) != 1 {
				return nil, where(fmt.Errorf("cannot read %q", in.args))
			}
			d.stages = append(d.stages, st)
		case "ENV":
			w, err := words(in.args)
			if err != nil {
				return nil, where(err)
			}
			if len(w) > 0 && !strings.Contains(w[0], "=") { // legacy "ENV name value"
				_, value, _ := strings.Cut(in.args, " ")
				st.env = append(st.env, [2]string{w[0], strings.TrimSpace(value)})
				continue
			}
			for _, kv := range w {
				name, value, ok := strings.Cut(kv, "=")
				if !ok {
					return nil, where(fmt.Errorf("%q is not name=value", kv))
				}
				st.env = append(st.env, [2]string{name, value})
			}
		case "RUN":
			st.run = append(st.run, in.args)
		case "USER":
			st.user = in.args
		case "WORKDIR":
			st.workdir = in.args
		case "VOLUME":
			w, err := jsonOrWords(in.args)
			if err != nil {
				return nil, where(err)
			}
			st.volumes = append(st.volumes, w...)
		case "HEALTHCHECK":
			st.healthcheck = in.args
		case "ENTRYPOINT":
			w, err := jsonOrWords(in.args)
			if err != nil || !strings.HasPrefix(in.args, "[") {
				return nil, where(fmt.Errorf("use the exec form (a JSON array): %q", in.args))
			}
			st.entrypoint = w
		case "COPY":
			w, err := words(in.args)
			if err != nil {
				return nil, where(err)
			}
			st.copies = append(st.copies, w)
		case "EXPOSE", "LABEL":
		default:
			return nil, where(fmt.Errorf("the tests do not read %s: teach parseDockerfile", in.cmd))
		}
	}
	return d, nil
}

// jsonOrWords reads ["a", "b"] (a JSON array of strings) or plain words.
func jsonOrWords(s string) ([]string, error) {
	if !strings.HasPrefix(s, "[") {
		return words(s)
	}
	inner := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "["), "]")
	var out []string
	for _, part := range strings.Split(inner, ",") {
		w, err := words(strings.TrimSpace(part))
		if err != nil || len(w) != 1 {
			return nil, fmt.Errorf("cannot read %q", s)
		}
		out = append(out, w[0])
	}
	return out, nil
}

// stage returns the stage called name.
func (d *dockerfile) stage(name string) *stage {
	for _, s := range d.stages {
		if s.name == name {
			return s
		}
	}
	return nil
}

// chain returns the stages a target is built from, the target last: FROM <stage>
// starts from that stage's image.
func (d *dockerfile) chain(target string) []*stage {
	s := d.stage(target)
	if s == nil {
		return nil
	}
	return append(d.chain(s.from), s)
}

// image is what a target's image holds: its environment, user, folders and so on,
// from its stage and the stages it starts from.
type image struct {
	env         map[string]string
	user        string
	workdir     string
	volumes     []string
	healthcheck string
	entrypoint  []string
	run         []string
	copies      [][]string
}

func (d *dockerfile) image(target string) (image, error) {
	chain := d.chain(target)
	if chain == nil {
		return image{}, fmt.Errorf("no stage %q", target)
	}
	img := image{env: map[string]string{}}
	for _, s := range chain {
		for _, kv := range s.env {
			img.env[kv[0]] = kv[1]
		}
		if s.user != "" {
			img.user = s.user
		}
		if s.workdir != "" {
			img.workdir = s.workdir
		}
		if s.healthcheck != "" {
			img.healthcheck = s.healthcheck
		}
		if s.entrypoint != nil {
			img.entrypoint = s.entrypoint
		}
		img.volumes = append(img.volumes, s.volumes...)
		img.run = append(img.run, s.run...)
		img.copies = append(img.copies, s.copies...)
	}
	return img, nil
}

func readDockerfile(t *testing.T, path string) *dockerfile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseDockerfile(string(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return d
}

func TestParseDockerfile(t *testing.T) {
	d, err := parseDockerfile(`ARG V=1.2
# a comment
FROM golang:${V}-x AS build
RUN a \
    # a comment inside
    && b
FROM debian:12 AS base
ENV A=1 \
    B="two words" \
    C=/x
ENV D 4 5
USER u
VOLUME ["/a", "/b"]
FROM base AS top
ENV A=9
ENTRYPOINT ["/bin/x", "y"]
`)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.stages[0].from; got != "golang:1.2-x" {
		t.Errorf("FROM with an ARG: %q", got)
	}
	if got := d.stages[0].run; len(got) != 1 || strings.Join(strings.Fields(got[0]), " ") != "a && b" {
		t.Errorf("RUN with a continuation and a comment: %q", got)
	}
	img, err := d.image("top")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "9", "B": "two words", "C": "/x", "D": "4 5"}
	if fmt.Sprint(img.env) != fmt.Sprint(want) {
		t.Errorf("env %v, want %v", img.env, want)
	}
	if img.user != "u" || strings.Join(img.volumes, ",") != "/a,/b" || strings.Join(img.entrypoint, " ") != "/bin/x y" {
		t.Errorf("image %+v", img)
	}
	if _, err := parseDockerfile("FROM x:1\nONBUILD RUN x\n"); err == nil {
		t.Error("an instruction the tests do not read was accepted")
	}
}
