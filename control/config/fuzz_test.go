package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that Parse never panics, and that what it accepts can be
// summarised and ordered.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	for _, name := range exampleFiles {
		seeds = append(seeds, examplePath(name))
	}
	for _, path := range seeds {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(base))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			if _, ok := err.(ErrorList); !ok {
				t.Fatalf("error is %T, not ErrorList: %v", err, err)
			}
			return
		}
		_ = Summary(c)
		for i := range c.Groups {
			if _, err := StartOrder(&c.Groups[i]); err != nil {
				t.Fatalf("valid configuration, but StartOrder: %v", err)
			}
		}
	})
}
