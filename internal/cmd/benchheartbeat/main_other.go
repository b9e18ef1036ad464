//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "bench-heartbeat: needs Linux (network namespaces, netlink, XDP)")
	os.Exit(1)
}
