package bolt

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/sseguard/sseguard/store"
)

// MarkSuffix names the ID mark beside the data file: events.db keeps its
// mark in events.db.hwm.
//
// The mark is the highest ID that may have been issued. It lives outside
// the bbolt pages so that a data file that lost its newest transaction (a
// damaged meta page) or all of its content cannot make the store hand out
// an acknowledged ID a second time. Append reserves IDs in blocks of
// markBlock, writing the mark before it commits, so the hot path writes
// the mark about once per markBlock events; Close lowers the mark to the
// last ID issued, so a clean restart leaves no gap in the IDs.
const MarkSuffix = ".hwm"

// markBlock is how many IDs one write of the mark reserves. After a crash
// the IDs jump by up to this many.
const markBlock = 100_000

// markHeader starts the mark file; the line says what the file is to an
// operator who finds it.
const markHeader = "sseguard event ID mark v1: IDs up to"

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// readMark returns the mark at path, and false when there is none.
func readMark(path string) (uint64, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read ID mark: %w", err)
	}
	n, ok := parseMark(string(b))
	if !ok {
		return 0, false, fmt.Errorf("ID mark %s is damaged: restore it from a backup, or, if the data file is intact, delete it (IDs then go on after the data file's newest event): %w", path, store.ErrCorrupt)
	}
	return n, true, nil
}

// formatMark lays out a mark: the header, the number, and a CRC-32C of
// both, on one line.
func formatMark(n uint64) string {
	body := markHeader + " " + strconv.FormatUint(n, 10)
	return body + " crc32c " + strconv.FormatUint(uint64(crc32.Checksum([]byte(body), crcTable)), 16) + "\n"
}

func parseMark(s string) (uint64, bool) {
	line, ok := strings.CutSuffix(s, "\n")
	if !ok {
		return 0, false
	}
	body, sum, ok := strings.Cut(line, " crc32c ")
	if !ok {
		return 0, false
	}
	want, err := strconv.ParseUint(sum, 16, 32)
	if err != nil || uint32(want) != crc32.Checksum([]byte(body), crcTable) {
		return 0, false
	}
	num, ok := strings.CutPrefix(body, markHeader+" ")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	return n, err == nil
}

// writeMark replaces the mark at path with n durably: a temporary file,
// fsync, rename, fsync of the folder. A crash leaves the old mark or the
// new one, never a torn one.
func writeMark(path string, n uint64) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write ID mark: %w", err)
	}
	_, err = f.WriteString(formatMark(n))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write ID mark: %w", err)
	}
	return nil
}

// syncDir makes a rename in dir durable. Windows cannot open a folder for
// syncing, and its renames need no such step.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
