//go:build unix

package bench

import "syscall"

// fdLimit returns the process's soft limit on open files. The Go runtime
// raises it to the hard limit at start.
func fdLimit() (uint64, bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, false
	}
	return rl.Cur, true
}
