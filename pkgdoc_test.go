package sseguard_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goPackages returns every directory of the module that holds non-test Go
// files, with those files.
func goPackages(t *testing.T) map[string][]string {
	t.Helper()
	pkgs := map[string][]string{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			pkgs[filepath.Dir(path)] = append(pkgs[filepath.Dir(path)], path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// TestPackageDocs fails when a package lacks its doc comment, has more than
// one, or when an exported name has none.
func TestPackageDocs(t *testing.T) {
	pkgs := goPackages(t)
	if len(pkgs) == 0 {
		t.Fatal("found no Go packages")
	}
	for dir, files := range pkgs {
		fset := token.NewFileSet()
		var docs []string
		for _, path := range files {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			want := "Package " + f.Name.Name + " "
			if f.Name.Name == "main" {
				want = "Command " + filepath.Base(dir) + " "
			}
			if f.Doc != nil {
				if text := f.Doc.Text(); !strings.HasPrefix(text, want) {
					t.Errorf("%s: package doc starts %q, want %q", path, firstLine(text), want)
				}
				docs = append(docs, path)
			}
			checkExportedDocs(t, fset, f)
		}
		switch len(docs) {
		case 0:
			t.Errorf("package %s has no package doc comment", dir)
		case 1:
		default:
			t.Errorf("package %s has %d package doc comments (%v); keep one", dir, len(docs), docs)
		}
	}
}

func checkExportedDocs(t *testing.T, fset *token.FileSet, f *ast.File) {
	t.Helper()
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() || d.Doc != nil {
				continue
			}
			if d.Recv != nil && !exportedRecv(d.Recv) {
				continue
			}
			if d.Recv != nil && isStdInterfaceMethod(d.Name.Name) {
				continue
			}
			t.Errorf("%s: exported %s has no doc comment", fset.Position(d.Pos()), d.Name.Name)
		case *ast.GenDecl:
			if d.Doc != nil || d.Tok == token.IMPORT {
				continue
			}
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					if s.Name.IsExported() && s.Doc == nil {
						t.Errorf("%s: exported type %s has no doc comment", fset.Position(s.Pos()), s.Name.Name)
					}
				case *ast.ValueSpec:
					for _, n := range s.Names {
						if n.IsExported() && s.Doc == nil && s.Comment == nil {
							t.Errorf("%s: exported %s has no doc comment", fset.Position(n.Pos()), n.Name)
						}
					}
				}
			}
		}
	}
}

// isStdInterfaceMethod names methods whose meaning the standard interface
// they implement documents.
func isStdInterfaceMethod(name string) bool {
	switch name {
	case "Error", "String", "Unwrap", "Is", "ServeHTTP", "Write", "WriteHeader", "Header", "Read", "Close", "MarshalJSON", "UnmarshalJSON", "MarshalText", "UnmarshalText":
		return true
	}
	return false
}

func exportedRecv(fl *ast.FieldList) bool {
	if len(fl.List) == 0 {
		return false
	}
	typ := fl.List[0].Type
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	if idx, ok := typ.(*ast.IndexExpr); ok {
		typ = idx.X
	}
	id, ok := typ.(*ast.Ident)
	return ok && id.IsExported()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
