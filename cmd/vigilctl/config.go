package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vigil-ha/vigil/control/config"
)

// configCmd is `vigilctl config check`.
func configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Work with configuration files",
		Args:  cobra.NoArgs,
		RunE:  needSubcommand,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check FILE",
		Short: "Validate a configuration file and summarize it",
		Long: "Check loads FILE as vigild would, prints every problem it finds, one a line,\n" +
			"and exits 1 if there is any; otherwise it prints a summary and exits 0.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := config.Load(args[0])
			if err != nil {
				var list config.ErrorList
				if !errors.As(err, &list) {
					return failed(err)
				}
				// One problem a line, "file:line: path: message", like a compiler.
				for _, e := range list {
					fmt.Fprintln(cmd.ErrOrStderr(), e)
				}
				return &exitError{code: exitFailed}
			}
			fmt.Fprint(cmd.OutOrStdout(), ensureNewline(config.Summary(c)))
			return nil
		},
	})
	return cmd
}

// ensureNewline ends s with a newline.
func ensureNewline(s string) string {
	if s == "" || s[len(s)-1] != '\n' {
		return s + "\n"
	}
	return s
}
