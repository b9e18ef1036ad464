//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "bench-mirror: needs Linux (network namespaces, veth, O_DIRECT)")
	os.Exit(1)
}
