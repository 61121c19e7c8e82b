package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// version names this build. Set it at build time with
// -ldflags "-X main.version=1.2.3"; otherwise it comes from the build's
// module and VCS information (buildVersion). It also names the binary
// --push leaves on remote hosts (~/.cache/fdtop/fdtop-VERSION), so it
// holds no blanks or slashes.
var version string

// devVersion is the version of a build that knows nothing better.
const devVersion = "0.1.0-dev"

func init() {
	if version == "" {
		version = buildVersion(debug.ReadBuildInfo())
	}
}

// buildInfo is what the Go toolchain stamped into the binary: the main
// module's version and the VCS revision it was built from.
type buildInfo struct {
	module   string // "" or "(devel)" when unknown
	revision string
	time     string
	modified bool
	goVer    string
}

func readBuildInfo(bi *debug.BuildInfo, ok bool) buildInfo {
	var out buildInfo
	if !ok || bi == nil {
		return out
	}
	out.module, out.goVer = bi.Main.Version, bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			out.revision = s.Value
		case "vcs.time":
			out.time = s.Value
		case "vcs.modified":
			out.modified = s.Value == "true"
		}
	}
	return out
}

// buildVersion is the module's version when it has one (go install
// module@v1.2.3, or the pseudo-version go build makes from the VCS), else
// devVersion with the VCS revision: 0.1.0-dev+a6164d0c1a2b[.dirty].
func buildVersion(bi *debug.BuildInfo, ok bool) string {
	info := readBuildInfo(bi, ok)
	if info.module != "" && info.module != "(devel)" {
		return strings.TrimPrefix(info.module, "v")
	}
	v := devVersion
	if info.revision != "" {
		v += "+" + short(info.revision)
		if info.modified {
			v += ".dirty"
		}
	}
	return v
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// writeVersion prints `fdtop --version`: the version, then the revision
// it was built from (and whether the tree had changes) and the Go
// toolchain, where the build says.
func writeVersion(w io.Writer) {
	fmt.Fprintf(w, "fdtop %s\n", version)
	info := readBuildInfo(debug.ReadBuildInfo())
	if info.revision != "" {
		rev := "revision " + info.revision
		if info.time != "" {
			rev += " (" + info.time + ")"
		}
		if info.modified {
			rev += ", modified"
		}
		fmt.Fprintln(w, rev)
	} else {
		fmt.Fprintln(w, "revision unknown (built without VCS information)")
	}
	if info.goVer != "" {
		fmt.Fprintf(w, "built with %s\n", info.goVer)
	}
}
