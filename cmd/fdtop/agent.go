package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/fdtop/fdtop/inspect/agent"
	"github.com/fdtop/fdtop/internal/live"
	"github.com/spf13/cobra"
)

// agentCommand is the hidden subcommand a remote fdtop runs: the agent
// protocol (agent.Serve) on stdin and stdout.
const agentCommand = "agent"

// agentCmdOptions are the hidden `fdtop agent`'s flags and patterns.
type agentCmdOptions struct {
	IO       *ioStreams
	Manager  managerFlags
	Patterns []string
	Protocol bool
	Interval time.Duration
}

// NewCmdAgent is the hidden `fdtop agent`: the remote side of -H.
func NewCmdAgent(ios *ioStreams, runF func(*agentCmdOptions) int) *cobra.Command {
	opts := &agentCmdOptions{IO: ios}
	cmd := &cobra.Command{
		Use:    agentCommand + " [--user|--system] [--interval D] [--protocol] [PATTERN...]",
		Short:  "serve one manager's live model on stdin and stdout (the remote side of -H)",
		Hidden: true,
		Args:   cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Patterns = args
			if runF != nil {
				return exitStatus(runF(opts))
			}
			return exitStatus(agentRun(opts))
		},
	}
	opts.Manager.register(cmd.Flags())
	cmd.Flags().BoolVar(&opts.Protocol, "protocol", false, "print the agent protocol version and exit")
	cmd.Flags().DurationVar(&opts.Interval, "interval", 2*time.Second, "rescan of every unit every `D` when nothing happens")
	return cmd
}

// agentRun serves one manager's live model on stdin/stdout until stdin ends.
func agentRun(opts *agentCmdOptions) int {
	stdout, stderr := opts.IO.Out, opts.IO.Err
	if opts.Protocol {
		fmt.Fprintln(stdout, agent.Protocol)
		return exitOK
	}
	mf := opts.Manager
	if err := mf.validate(); err != nil {
		return fail(stderr, agentCommand, err)
	}
	ctx, sig, stop := withSignals(context.Background())
	defer stop()
	client, b, err := mf.connect(ctx, opts.Patterns)
	if err != nil {
		return sig.exit(failUnlessSignalled(stderr, agentCommand, sig, err))
	}
	defer client.Close()
	model := live.NewAgentModel(client, b, opts.Interval)
	hostname, _ := os.Hostname()
	hello := agent.Message{Version: version, Hostname: hostname, User: os.Getenv("USER")}
	if err := agent.Serve(ctx, opts.IO.In, stdout, model, hello); err != nil {
		return sig.exit(failUnlessSignalled(stderr, agentCommand, sig, err))
	}
	return sig.exit(exitOK)
}
