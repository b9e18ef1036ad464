package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/control/api"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // the operation failed
	exitUsage  = 2 // the command line is wrong
)

// Time limits of a call to vigild: an operation may run scripts for up to
// two minutes on the daemon's side.
const (
	statusTimeout = 15 * time.Second
	opTimeout     = 3 * time.Minute
)

// exitError ends vigilctl with code, printing err (when not nil) on stderr.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// failed marks err as the failure of an operation: exit 1.
func failed(err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: exitFailed, err: err}
}

// cli is the state the commands share.
type cli struct {
	socket string
}

// client returns a client of the vigild at the chosen socket.
func (c *cli) client() *api.Client { return api.NewClient(c.socket) }

// newRoot returns the vigilctl command tree.
func newRoot() *cobra.Command {
	c := &cli{}
	root := &cobra.Command{
		Use:           "vigilctl",
		Short:         "Operate a Vigil high-availability cluster node",
		Args:          cobra.NoArgs,
		RunE:          needSubcommand,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	defSocket := api.DefaultSocket
	if env := os.Getenv("VIGIL_SOCKET"); env != "" {
		defSocket = env
	}
	root.PersistentFlags().StringVar(&c.socket, "socket", defSocket,
		"vigild's control socket (environment: VIGIL_SOCKET)")
	root.AddCommand(
		statusCmd(c),
		clusterCmd(c),
		groupCmd(c),
		monitorCmd(c),
		mirrorCmd(c),
		configCmd(),
		awsCmd(),
	)
	return root
}

// needSubcommand is the action of a command that only groups others.
func needSubcommand(cmd *cobra.Command, _ []string) error {
	return fmt.Errorf("%s needs a subcommand", cmd.CommandPath())
}

// run runs vigilctl with args and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	if ee := (*exitError)(nil); errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "vigilctl: %v\n", ee.err)
		}
		return ee.code
	}
	// Anything else comes from parsing the command line.
	fmt.Fprintf(stderr, "vigilctl: %v\nRun 'vigilctl --help' for usage.\n", err)
	return exitUsage
}
