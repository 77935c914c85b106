// Package gofunc finds what a Go function's result depends on in its source: the function's
// own text and the text of every function of the same module that it calls, directly or
// not. strata keys a build function's layer by it, so that changing a helper the function
// calls rebuilds the layer, and changing an unrelated function does not (Modal tracks the
// function's own text only).
package gofunc

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// Identity is a function's name and the hash of its source and its callees' sources.
type Identity struct {
	// Name is the function's qualified name, as the runtime knows it ("main.download").
	Name string
	// Hash is "sha256:..." of the sources, canonically printed (comments and formatting do
	// not count).
	Hash string
	// Funcs are the qualified names of the functions whose source is in the hash.
	Funcs []string
}

// Of returns the identity of fn, which must be a named top-level function or a method
// value of the program running.
func Of(fn any) (Identity, error) {
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func || v.IsNil() {
		return Identity{}, fmt.Errorf("%T is not a function", fn)
	}
	rf := runtime.FuncForPC(v.Pointer())
	if rf == nil {
		return Identity{}, fmt.Errorf("the runtime does not know the function %T", fn)
	}
	name := strings.TrimSuffix(rf.Name(), "-fm") // a method value's wrapper
	if isClosure(name) {
		return Identity{}, fmt.Errorf("%s is a function literal: give a named function, whose source strata can find and hash", name)
	}
	file, _ := rf.FileLine(rf.Entry())
	path, err := sourcePath(file)
	if err != nil {
		return Identity{}, fmt.Errorf("%s: %w", name, err)
	}
	dir := filepath.Dir(path)
	_, mod, err := moduleOf(dir)
	if err != nil {
		return Identity{}, fmt.Errorf("%s: %w", name, err)
	}
	// The name after the package's: "F", or "(*T).M" and "T.M" for methods. The runtime
	// calls package main "main", others by their import path.
	short := name
	if i := strings.LastIndex(name, "/"); i >= 0 {
		short = name[i+1:]
	}
	if !strings.HasPrefix(name, mod) && !strings.HasPrefix(name, "main.") {
		return Identity{}, fmt.Errorf("%s is not in the module %s", name, mod)
	}
	short = short[strings.Index(short, ".")+1:]
	// A package whose last path element has dots ("yaml.v3") is not a module's own here.
	short = strings.NewReplacer("(*", "", ")", "").Replace(short)
	id, err := FromSource(dir, short)
	if err != nil {
		return Identity{}, fmt.Errorf("%s: %w", name, err)
	}
	id.Name = name
	return id, nil
}

// FromSource returns the identity of the function name ("F", or "T.M" for a method) of the
// package in dir, from the source files there and in the rest of its module.
func FromSource(dir, name string) (Identity, error) {
	w := &walker{fset: token.NewFileSet(), pkgs: map[string]*pkg{}, seen: map[string]bool{}}
	p, err := w.load(dir)
	if err != nil {
		return Identity{}, err
	}
	if err := w.visit(p, name); err != nil {
		return Identity{}, err
	}
	sort.Strings(w.order)
	h := sha256.New()
	for _, k := range w.order {
		fmt.Fprintf(h, "%s\n%s\n", k, w.texts[k])
	}
	return Identity{Name: p.path + "." + name, Hash: "sha256:" + hex.EncodeToString(h.Sum(nil)), Funcs: w.order}, nil
}

// isClosure reports whether a runtime function name is a function literal's: one of its
// parts after the package is "funcN" ("main.f.func1", "pkg.(*T).M.func2.1").
func isClosure(name string) bool {
	for _, part := range strings.Split(name[strings.LastIndex(name, "/")+1:], ".")[1:] {
		if n, ok := strings.CutPrefix(part, "func"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
			return true
		}
	}
	return false
}

// sourcePath finds a source file the runtime names: absolute, or, in a binary built with
// -trimpath, "module/path/file.go", looked up from the working folder's module.
func sourcePath(file string) (string, error) {
	if filepath.IsAbs(file) {
		if _, err := os.Stat(file); err != nil {
			return "", fmt.Errorf("its source %s is not on this machine: the program must run where its source is, to hash it", file)
		}
		return file, nil
	}
	root, mod, err := findModule()
	if err != nil {
		return "", err
	}
	rel, ok := strings.CutPrefix(file, mod+"/")
	if !ok {
		return "", fmt.Errorf("its source %s is not in the module %s of the working folder", file, mod)
	}
	return filepath.Join(root, filepath.FromSlash(rel)), nil
}

var moduleOnce struct {
	sync.Once
	root, path string
	err        error
}

// findModule finds the go.mod above the working folder: its folder and module path.
func findModule() (string, string, error) {
	moduleOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			moduleOnce.err = err
			return
		}
		moduleOnce.root, moduleOnce.path, moduleOnce.err = moduleOf(dir)
	})
	return moduleOnce.root, moduleOnce.path, moduleOnce.err
}

// moduleOf finds the module a folder is in.
func moduleOf(dir string) (root, path string, err error) {
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if m, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
					return d, strings.Trim(strings.TrimSpace(m), `"`), nil
				}
			}
			return "", "", fmt.Errorf("%s/go.mod names no module", d)
		}
		if filepath.Dir(d) == d {
			return "", "", fmt.Errorf("no go.mod above %s", dir)
		}
	}
}

// pkg is a parsed package: its declarations by name ("F", "T.M").
type pkg struct {
	dir     string
	path    string // import path
	modRoot string
	modPath string
	decls   map[string]*ast.FuncDecl
	imports map[*ast.File]map[string]string // file -> local name -> import path
	fileOf  map[*ast.FuncDecl]*ast.File
}

type walker struct {
	fset  *token.FileSet
	pkgs  map[string]*pkg // by folder
	seen  map[string]bool
	order []string
	texts map[string]string
}

func (w *walker) load(dir string) (*pkg, error) {
	if p, ok := w.pkgs[dir]; ok {
		return p, nil
	}
	root, mod, err := moduleOf(dir)
	if err != nil {
		return nil, err
	}
	rel, _ := filepath.Rel(root, dir)
	p := &pkg{dir: dir, modRoot: root, modPath: mod, path: mod, decls: map[string]*ast.FuncDecl{}, imports: map[*ast.File]map[string]string{}, fileOf: map[*ast.FuncDecl]*ast.File{}}
	if rel != "." {
		p.path = mod + "/" + filepath.ToSlash(rel)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(w.fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		imps := map[string]string{}
		for _, im := range af.Imports {
			path := strings.Trim(im.Path.Value, `"`)
			local := path[strings.LastIndex(path, "/")+1:]
			if im.Name != nil {
				local = im.Name.Name
			}
			imps[local] = path
		}
		p.imports[af] = imps
		for _, d := range af.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			key := fd.Name.Name
			if fd.Recv != nil && len(fd.Recv.List) > 0 {
				key = recvName(fd.Recv.List[0].Type) + "." + key
			}
			p.decls[key] = fd
			p.fileOf[fd] = af
		}
	}
	w.pkgs[dir] = p
	return p, nil
}

func recvName(t ast.Expr) string {
	switch e := t.(type) {
	case *ast.StarExpr:
		return recvName(e.X)
	case *ast.IndexExpr:
		return recvName(e.X)
	case *ast.IndexListExpr:
		return recvName(e.X)
	case *ast.Ident:
		return e.Name
	}
	return ""
}

// visit adds a declaration's text and, recursively, the functions of the same module it
// refers to: a call of F, a method T.M (by name, on any type of the package that has it),
// and pkg.F of another package of the module.
func (w *walker) visit(p *pkg, name string) error {
	fd, ok := p.decls[name]
	if !ok {
		return fmt.Errorf("no declaration of %s in %s", name, p.dir)
	}
	key := p.path + "." + name
	if w.seen[key] {
		return nil
	}
	w.seen[key] = true
	var buf bytes.Buffer
	if err := printer.Fprint(&buf, w.fset, fd); err != nil {
		return err
	}
	if w.texts == nil {
		w.texts = map[string]string{}
	}
	w.texts[key] = buf.String()
	w.order = append(w.order, key)
	var err error
	ast.Inspect(fd, func(n ast.Node) bool {
		if err != nil {
			return false
		}
		switch e := n.(type) {
		case *ast.Ident:
			if _, ok := p.decls[e.Name]; ok {
				err = w.visit(p, e.Name)
			}
		case *ast.SelectorExpr:
			if x, ok := e.X.(*ast.Ident); ok {
				if path, ok := p.imports[p.fileOf[fd]][x.Name]; ok {
					if dir, ok := p.moduleDir(path); ok {
						q, lerr := w.load(dir)
						if lerr != nil {
							err = lerr
							return false
						}
						if _, ok := q.decls[e.Sel.Name]; ok {
							err = w.visit(q, e.Sel.Name)
						}
						return false
					}
				}
			}
			// A method call x.M(): every method M of the package, as the type is not known.
			for k := range p.decls {
				if strings.HasSuffix(k, "."+e.Sel.Name) {
					if err = w.visit(p, k); err != nil {
						return false
					}
				}
			}
		}
		return true
	})
	return err
}

// moduleDir is the folder of an import path that is in the package's module.
func (p *pkg) moduleDir(path string) (string, bool) {
	rel, ok := strings.CutPrefix(path, p.modPath+"/")
	if !ok {
		return "", false
	}
	return filepath.Join(p.modRoot, filepath.FromSlash(rel)), true
}
