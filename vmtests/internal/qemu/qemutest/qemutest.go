// Package qemutest is a stand-in for qemu-system-x86_64 in tests: a test
// binary that calls MaybeFake first thing in TestMain becomes, when
// re-executed with EnvFake set, a fake qemu that connects to the sockets
// its -chardev arguments name and plays a script.
package qemutest

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/vigil-ha/vigil/vmtests/internal/proto"
)

// EnvFake selects the script:
//
//   - "hang": write "fake: booting" to the console, then never exit
//     (the deadline must kill it);
//   - "fail": print an error and exit 1 before connecting;
//   - "run": boot a guest that reports ready, runs run 0 printing
//     "hello" on stdout and "oops" on stderr, exits 3, and is done;
//   - "crash": report ready, start run 0, print "partial", then exit
//     without an exit status (a kernel panic, as the host sees it).
const EnvFake = "VIGIL_FAKE_QEMU"

// MaybeFake plays the script EnvFake names and exits, or returns at once
// when it is not set.
func MaybeFake() {
	script := os.Getenv(EnvFake)
	if script == "" {
		return
	}
	if script == "fail" {
		fmt.Fprintln(os.Stderr, "qemu-system-x86_64: fake failure")
		os.Exit(1)
	}
	socks := map[string]net.Conn{}
	for _, a := range os.Args[1:] {
		for _, opt := range strings.Split(a, ",") {
			p, ok := strings.CutPrefix(opt, "path=")
			if !ok || !strings.HasSuffix(p, ".sock") {
				continue
			}
			c, err := net.Dial("unix", p)
			if err != nil {
				fmt.Fprintln(os.Stderr, "fake qemu:", err)
				os.Exit(1)
			}
			name := p[strings.LastIndexByte(p, '/')+1:]
			socks[strings.TrimSuffix(name, ".sock")] = c
		}
	}
	console, output, status := socks["console"], socks["output"], socks["status"]
	if console == nil || output == nil || status == nil {
		fmt.Fprintln(os.Stderr, "fake qemu: missing a socket:", os.Args)
		os.Exit(1)
	}
	fmt.Fprintln(console, "fake: booting")
	fw := proto.NewFrameWriter(output)
	switch script {
	case "hang":
		select {}
	case "run":
		fmt.Fprintln(status, proto.Event{Kind: proto.KindReady, Uptime: 1500e6})
		fmt.Fprintln(status, proto.Event{Kind: proto.KindStart, Run: 0})
		fw.Write(0, proto.Stdout, []byte("hello\n"))
		fw.Write(0, proto.Stderr, []byte("oops\n"))
		fmt.Fprintln(status, proto.Event{Kind: proto.KindExit, Run: 0, Code: 3, Duration: 20e6})
		fmt.Fprintln(status, proto.Event{Kind: proto.KindDone})
	case "crash":
		fmt.Fprintln(status, proto.Event{Kind: proto.KindReady, Uptime: 1500e6})
		fmt.Fprintln(status, proto.Event{Kind: proto.KindStart, Run: 0})
		fw.Write(0, proto.Stdout, []byte("partial\n"))
		fmt.Fprintln(console, "Kernel panic - not syncing: fake")
	}
	os.Exit(0)
}
