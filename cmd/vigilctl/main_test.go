package main

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/control/api/apitest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if leaks := apitest.Leaks(5 * time.Second); code == 0 && len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", leaks)
		code = 1
	}
	os.Exit(code)
}
