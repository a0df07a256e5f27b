// Package version tells which build of wsd is running, from the module
// information the Go toolchain embeds (runtime/debug.ReadBuildInfo), so a
// `go install` or `go build` binary carries it without extra steps.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
)

// Version and Revision may be set at link time, overriding the build info:
//
//	go build -ldflags "-X github.com/wsd-chat/wsd/internal/version.Version=v1.2.3"
var (
	Version  string
	Revision string
)

// Info describes a build.
type Info struct {
	Version   string `json:"version"`   // module version, "(devel)" for a local build
	Revision  string `json:"revision"`  // VCS revision, "unknown" when not recorded
	GoVersion string `json:"goversion"` // toolchain, e.g. go1.26.8
	Modified  bool   `json:"modified,omitempty"`
}

var (
	once sync.Once
	info Info
)

// Get returns the running build's Info.
func Get() Info {
	once.Do(func() {
		info = Info{Version: "(devel)", Revision: "unknown", GoVersion: runtime.Version()}
		if bi, ok := debug.ReadBuildInfo(); ok {
			if v := bi.Main.Version; v != "" {
				info.Version = v
			}
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					info.Revision = s.Value
				case "vcs.modified":
					info.Modified = s.Value == "true"
				}
			}
		}
		if Version != "" {
			info.Version = Version
		}
		if Revision != "" {
			info.Revision = Revision
		}
	})
	return info
}

// String is the one-line form -version prints.
func (i Info) String() string {
	rev := i.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if i.Modified {
		rev += "+dirty"
	}
	return fmt.Sprintf("wsd %s (revision %s, %s)", i.Version, rev, i.GoVersion)
}
