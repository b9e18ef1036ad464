package cpio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/vmtests/internal/testenv"
)

// sample writes a small archive: a directory, a file of an odd length (to
// exercise padding), an empty file and a link.
func sample(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, e := range []struct {
		Entry
		data string
	}{
		{Entry{Name: "bin", Type: TypeDir, Perm: 0o755}, ""},
		{Entry{Name: "bin/hello", Type: TypeFile, Perm: 0o755, Size: 5}, "hello"},
		{Entry{Name: "empty", Type: TypeFile, Perm: 0o600}, ""},
		{Entry{Name: "bin/sh", Type: TypeSymlink, Linkname: "hello"}, ""},
	} {
		if err := w.WriteHeader(&e.Entry); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != w.Written() {
		t.Fatalf("Written() = %d, wrote %d", w.Written(), buf.Len())
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	b := sample(t)
	if len(b)%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", len(b))
	}
	if !bytes.Equal(b, sample(t)) {
		t.Error("the same entries gave different bytes")
	}
	r := NewReader(bytes.NewReader(b))
	var got []string
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if e.Type == TypeSymlink {
			data = []byte(e.Linkname)
		}
		got = append(got, strings.Join([]string{e.Name, typeName(e.Type), fmt.Sprintf("%o", e.Perm), string(data)}, ":"))
	}
	want := []string{"bin:dir:755:", "bin/hello:file:755:hello", "empty:file:600:", "bin/sh:link:777:hello"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("read back %q, want %q", got, want)
	}
}

// TestGNUCpioReads checks the archive with another implementation: GNU
// cpio lists and extracts it.
func TestGNUCpioReads(t *testing.T) {
	cpio := testenv.RequireTool(t, "cpio")
	dir := t.TempDir()
	cmd := exec.Command(cpio, "-idm", "--quiet")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(sample(t))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -idm: %v: %s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "bin", "hello")); err != nil || string(b) != "hello" {
		t.Errorf("bin/hello = %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "bin", "hello")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/hello mode: %v, %v", fi, err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "bin", "sh")); err != nil || l != "hello" {
		t.Errorf("bin/sh -> %q, %v", l, err)
	}
}

func TestWriterErrors(t *testing.T) {
	w := NewWriter(io.Discard)
	if err := w.WriteHeader(&Entry{Name: "/abs", Type: TypeFile}); err == nil {
		t.Error("absolute name accepted")
	}
	if err := w.WriteHeader(&Entry{Name: "f", Type: TypeFile, Size: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("abc")); !errors.Is(err, ErrTooLong) {
		t.Errorf("write past Size: %v, want ErrTooLong", err)
	}
	w.Write([]byte("a"))
	if err := w.WriteHeader(&Entry{Name: "g", Type: TypeFile}); err == nil {
		t.Error("a header before the previous file's data was complete")
	}
	if err := w.Close(); err == nil {
		t.Error("Close with data missing succeeded")
	}
}

func TestReaderRejectsOtherFormats(t *testing.T) {
	_, err := NewReader(strings.NewReader(strings.Repeat("0", headerLen))).Next()
	if !errors.Is(err, ErrFormat) {
		t.Errorf("Next on zeros = %v, want ErrFormat", err)
	}
}

func typeName(t Type) string {
	switch t {
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "link"
	}
	return "file"
}
