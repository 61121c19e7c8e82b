package main

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/spf13/cobra"
)

// completeWait bounds how long a completion waits for the manager: a
// shell waiting on a Tab must not hang.
const completeWait = 3 * time.Second

// completeUnits completes unit name arguments from the manager the
// command's flags name (--user, --system, --address), as systemctl's
// completion does: the socket and service units whose names start with
// what is typed. A word that is already a pattern (a glob character in
// it) is left alone.
func (m *managerFlags) completeUnits(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if strings.ContainsAny(toComplete, `*?[\`) {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(context.Background(), completeWait)
	defer cancel()
	opts := dbusclient.Options{Scope: dbusclient.System, Address: m.address}
	if m.user {
		opts.Scope = dbusclient.User
	}
	c, err := dbusclient.Connect(ctx, opts)
	if err != nil {
		// Nothing to offer (no manager there): the subcommands and flags
		// still are, so no error directive, which would drop them too.
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer func() { _ = c.Close() }()
	names, err := c.UnitNames(ctx, []string{toComplete + "*"})
	names = slices.DeleteFunc(names, func(n string) bool {
		return !strings.HasSuffix(n, ".socket") && !strings.HasSuffix(n, ".service")
	})
	if err != nil {
		// Nothing to offer (no manager there): the subcommands and flags
		// still are, so no error directive, which would drop them too.
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeHosts completes -H from the user's ssh configuration: the Host
// names of ~/.ssh/config (no patterns) and the hosts of
// ~/.ssh/known_hosts (not hashed ones), after the last comma typed.
func completeHosts(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	done, word := "", toComplete
	if i := strings.LastIndexByte(toComplete, ','); i >= 0 {
		done, word = toComplete[:i+1], toComplete[i+1:]
	}
	user := ""
	if i := strings.IndexByte(word, '@'); i >= 0 {
		user, word = word[:i+1], word[i+1:]
	}
	hosts := sshHosts(filepath.Join(home, ".ssh"))
	var out []string
	for _, h := range hosts {
		if strings.HasPrefix(h, word) {
			out = append(out, done+user+h)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

// sshHosts reads the host names of dir's config and known_hosts, sorted
// and without duplicates.
func sshHosts(dir string) []string {
	var hosts []string
	each := func(name string, line func(fields []string)) {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return
		}
		defer func() { _ = f.Close() }()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if fs := strings.Fields(sc.Text()); len(fs) > 0 && !strings.HasPrefix(fs[0], "#") {
				line(fs)
			}
		}
	}
	each("config", func(fs []string) {
		if !strings.EqualFold(fs[0], "Host") {
			return
		}
		for _, h := range fs[1:] {
			if !strings.ContainsAny(h, "*?!") {
				hosts = append(hosts, h)
			}
		}
	})
	each("known_hosts", func(fs []string) {
		if strings.HasPrefix(fs[0], "@") { // @cert-authority, @revoked
			if len(fs) < 2 {
				return
			}
			fs = fs[1:]
		}
		for _, h := range strings.Split(fs[0], ",") {
			if strings.HasPrefix(h, "|") || strings.ContainsAny(h, "*?!") {
				continue // hashed, or a pattern
			}
			if strings.HasPrefix(h, "[") { // [host]:port
				if end := strings.Index(h, "]:"); end > 0 {
					h = h[1:end] + h[end+1:]
				}
			}
			hosts = append(hosts, h)
		}
	})
	slices.Sort(hosts)
	return slices.Compact(hosts)
}
