// Package gobuild builds this module's commands for tests that run them as
// a user would: the sseguard binary behind a systemd unit or a Dockerfile's
// command, or the example programs.
//
// A Set builds its packages once per test binary, into a temporary folder
// that the test binary's TestMain removes:
//
//	var bins = &gobuild.Set{Packages: map[string]string{"sseguard": gobuild.Sseguard}}
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		bins.Remove()
//		os.Exit(code)
//	}
//
//	func TestUnit(t *testing.T) {
//		bin := bins.Path(t, "sseguard")
//		...
//	}
//
// Package gobuild is for tests only.
package gobuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
)

// Sseguard is the import path of the sseguard command.
const Sseguard = "github.com/sseguard/sseguard/cmd/sseguard"

// Set is a set of commands built together, once. The zero value builds
// nothing; set Packages before the first call of Dir or Path.
type Set struct {
	// Packages maps a binary's file name to the package it is built from.
	Packages map[string]string

	once sync.Once
	dir  string
	err  error
}

// Dir builds every package of s the first time it is called and returns
// the folder that holds the binaries; a failed build fails t, then and on
// every later call.
func (s *Set) Dir(t testing.TB) string {
	t.Helper()
	s.once.Do(s.build)
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.dir
}

// Path returns the path of the binary named name, building the set first
// if it has not been built.
func (s *Set) Path(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(s.Dir(t), name)
}

// Remove deletes the binaries; TestMain calls it after the tests ran.
func (s *Set) Remove() {
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

func (s *Set) build() {
	goTool, err := exec.LookPath("go") // go test puts GOROOT/bin first on PATH
	if err != nil {
		s.err = fmt.Errorf("gobuild: finding the go tool: %w", err)
		return
	}
	if s.dir, err = os.MkdirTemp("", "sseguard-bin-"); err != nil {
		s.err = fmt.Errorf("gobuild: %w", err)
		return
	}
	names := make([]string, 0, len(s.Packages))
	for name := range s.Packages {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		pkg := s.Packages[name]
		out, err := exec.Command(goTool, "build", "-o", filepath.Join(s.dir, name), pkg).CombinedOutput()
		if err != nil {
			s.err = fmt.Errorf("gobuild: go build %s: %w\n%s", pkg, err, out)
			return
		}
	}
}
