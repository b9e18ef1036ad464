// Command vigil-vmtest runs the VM test suites (make vmtest): for each
// suite it builds the test binaries of its packages, boots Debian's cloud
// kernel in qemu from an initramfs holding them, streams their output,
// and reports boot time, durations and skips. Under CI=true a skip that
// the suite does not expect fails it.
//
//	vigil-vmtest [-run REGEXP] [-list] [SUITE...]
//
// Build it with CGO_ENABLED=0 (make vmtest does): the same binary is the
// VM's init. The environment variables of vigil-vmexec apply.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigil-ha/vigil/vmtests/internal/guest"
	"github.com/vigil-ha/vigil/vmtests/internal/harness"
)

func main() {
	if guest.IsInit() {
		guest.Main()
	}
	run := flag.String("run", "", "only the tests matching this -test.run `regexp`, in every package")
	list := flag.Bool("list", false, "list the suites and exit")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: vigil-vmtest [-run REGEXP] [-list] [SUITE...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *list {
		for _, s := range harness.Suites {
			fmt.Printf("%-8s %d VM  %s\n", s.Name, max(1, s.VMs), s.Doc)
		}
		return
	}
	suites := harness.Suites
	if flag.NArg() > 0 {
		suites = nil
		for _, name := range flag.Args() {
			s, err := harness.FindSuite(name)
			if err != nil {
				fail(err)
			}
			suites = append(suites, s)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cwd, err := os.Getwd()
	if err != nil {
		fail(err)
	}
	env, err := harness.NewEnv(cwd, os.Stderr)
	if err != nil {
		fail(err)
	}
	ci := os.Getenv("CI") == "true"
	results, err := env.RunSuites(ctx, suites, harness.SuiteOptions{Run: *run, CI: ci, Out: os.Stdout})
	if err != nil {
		fail(err)
	}
	for _, r := range results {
		if !r.Passed(ci) {
			stop()
			os.Exit(1)
		}
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "vigil-vmtest: %v\n", err)
	os.Exit(1)
}
