package proto

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestFramesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	fw := NewFrameWriter(&buf)
	big := bytes.Repeat([]byte("x"), MaxFrame+10)
	io.WriteString(fw.Stream(0, Stdout), "=== RUN   TestA\n\x16binary-safe\x00\n")
	fw.Write(0, Stderr, []byte("warning\n"))
	fw.Write(1, Stdout, big)
	if err := fw.Write(70000, Stdout, nil); err == nil {
		t.Error("run 70000 accepted")
	}
	var got []Frame
	for {
		f, err := ReadFrame(&buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, f)
	}
	if len(got) != 4 {
		t.Fatalf("%d frames, want 4 (the big write split in two)", len(got))
	}
	if got[0].Run != 0 || got[0].Stream != Stdout || string(got[0].Data) != "=== RUN   TestA\n\x16binary-safe\x00\n" {
		t.Errorf("frame 0 = %+v", got[0])
	}
	if got[1].Stream != Stderr || string(got[1].Data) != "warning\n" {
		t.Errorf("frame 1 = %+v", got[1])
	}
	if got[2].Run != 1 || !bytes.Equal(append(got[2].Data, got[3].Data...), big) || len(got[2].Data) != MaxFrame {
		t.Errorf("big write came back as %d+%d bytes", len(got[2].Data), len(got[3].Data))
	}
}

func TestReadFrameRejects(t *testing.T) {
	for name, in := range map[string]string{
		"test output on the port": "=== RUN   TestA\n",
		"bad stream":              "V\x03\x00\x00\x00\x00\x00\x01x",
		"too long":                "V\x01\x00\x00\x7f\x00\x00\x00",
		"truncated data":          "V\x01\x00\x00\x00\x00\x00\x05ab",
		"truncated header":        "V\x01\x00",
	} {
		if _, err := ReadFrame(strings.NewReader(in)); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: ReadFrame = %v, want ErrBadFrame", name, err)
		}
	}
}

func TestEventsRoundTrip(t *testing.T) {
	for _, e := range []Event{
		{Kind: KindReady, Uptime: 2870 * time.Millisecond},
		{Kind: KindStart, Run: 3},
		{Kind: KindExit, Run: 3, Code: 1, Duration: 12345 * time.Millisecond},
		{Kind: KindExit, Run: 0, Code: 137, Duration: time.Second, Signal: "SIGKILL"},
		{Kind: KindError, Message: "load module veth.ko: exec format error\n\"quoted\""},
		{Kind: KindDone},
	} {
		got, err := ParseEvent(e.String())
		if err != nil {
			t.Errorf("ParseEvent(%q): %v", e.String(), err)
			continue
		}
		if got != e {
			t.Errorf("ParseEvent(%q) = %+v, want %+v", e.String(), got, e)
		}
	}
}

func TestParseEventRejects(t *testing.T) {
	for _, line := range []string{
		"", "PASS", "exit", "exit 0", "exit 0 1", "exit x 0 10", "exit 0 0 10 SIGKILL extra",
		"ready", "ready -1", "ready 5 6", "start", "start -1", "done now", "error unquoted",
		"--- FAIL: TestA (0.00s)",
	} {
		if e, err := ParseEvent(line); err == nil {
			t.Errorf("ParseEvent(%q) = %+v, want an error", line, e)
		}
	}
}

func TestStatusReaderOrder(t *testing.T) {
	read := func(text string) ([]Kind, error) {
		sr := NewStatusReader(strings.NewReader(text))
		var kinds []Kind
		for {
			e, err := sr.Next()
			if errors.Is(err, io.EOF) {
				return kinds, nil
			}
			if err != nil {
				return kinds, err
			}
			kinds = append(kinds, e.Kind)
		}
	}
	if kinds, err := read("ready 2000\nstart 0\nexit 0 0 10\nstart 1\nexit 1 2 10\ndone\n"); err != nil || len(kinds) != 6 {
		t.Errorf("a healthy guest: %v, %v", kinds, err)
	}
	if _, err := read("error \"no virtio_console\"\n"); err != nil {
		t.Errorf("an error before ready: %v", err)
	}
	for name, text := range map[string]string{
		"start before ready":  "start 0\n",
		"runs out of order":   "ready 1\nstart 1\n",
		"exit of another run": "ready 1\nstart 0\nexit 1 0 1\n",
		"second start":        "ready 1\nstart 0\nstart 1\n",
		"done while running":  "ready 1\nstart 0\ndone\n",
		"after done":          "ready 1\ndone\nstart 0\n",
		"second ready":        "ready 1\nready 2\n",
	} {
		if _, err := read(text); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
