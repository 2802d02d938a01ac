package nginx_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoPath matches what reads as a path in the repository: a file name
// with an extension the repository uses, or a folder ending in '/'.
var repoPath = regexp.MustCompile(`[A-Za-z0-9_./-]+\.(?:go|md|conf|yaml|yml|cfg|sh)\b|[A-Za-z_][A-Za-z0-9_.-]*/(?:[A-Za-z0-9_.-]+/)*`)

// notPath matches media types and protocol names, which look like paths.
var notPath = regexp.MustCompile(`^(?:text|application|image|HTTP|nginx)/`)

// TestFilesCiteOnlyWhatExists: the comments and notes of this folder
// name only files and folders that are in the repository, relative to the
// repository's root, to this folder, or to the citing file's folder.
// (They cited a guide and a design file kept elsewhere.)
func TestFilesCiteOnlyWhatExists(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, pat := range []string{"*.conf", "*.yaml", "testdata/*"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	cited := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range repoPath.FindAllStringIndex(string(raw), -1) {
			p := strings.TrimSuffix(string(raw[m[0]:m[1]]), ".")
			before := ""
			if m[0] > 0 {
				before = string(raw[m[0]-1])
			}
			// Absolute paths are the reader's machine (/etc/nginx/...);
			// media types and protocol versions are not paths.
			if before == "/" || strings.HasPrefix(p, "/") || strings.Contains(p, "//") ||
				notPath.MatchString(p) {
				continue
			}
			cited++
			found := false
			for _, base := range []string{root, ".", filepath.Dir(f)} {
				if _, err := os.Stat(filepath.Join(base, p)); err == nil {
					found = true
				}
			}
			if !found {
				t.Errorf("%s cites %q, which is not in the repository", f, p)
			}
		}
	}
	if cited == 0 {
		t.Fatal("no citations found: the pattern is broken")
	}
}
