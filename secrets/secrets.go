// Package secrets is strata's local secret store: named sets of environment variables,
// kept in files only root (or the owner) can read, that build steps and runs receive as
// environment and that never enter an image, a cache key or a log.
package secrets

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/strata-build/strata/store"
)

// ErrNotFound is returned for a secret that does not exist.
var ErrNotFound = errors.New("secret not found")

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
var keyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Store keeps secrets in a folder, one 0600 file per secret.
type Store struct{ dir string }

// Open returns the secret store in dir.
func Open(dir string) *Store { return &Store{dir: dir} }

func (s *Store) path(name string) string { return filepath.Join(s.dir, name+".json") }

// Create stores (or replaces) a secret.
func (s *Store) Create(name string, values map[string]string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("secret name %q: use letters, digits, '.', '_' and '-'", name)
	}
	if len(values) == 0 {
		return fmt.Errorf("secret %q: give at least one KEY=VALUE", name)
	}
	for k := range values {
		if !keyRE.MatchString(k) {
			return fmt.Errorf("secret %q: key %q is not an environment variable name (letters, digits and _, not starting with a digit)", name, k)
		}
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(s.dir, 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(values)
	if err != nil {
		return err
	}
	// The temp file is created 0600, so the values are never readable by others.
	return store.WriteFileAtomic(s.path(name), b, 0o600)
}

// Get returns a secret's values.
func (s *Store) Get(name string) (map[string]string, error) {
	b, err := os.ReadFile(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("secret %q: %w; create it with: strata secret create %s KEY=VALUE", name, ErrNotFound, name)
	}
	if err != nil {
		return nil, err
	}
	var v map[string]string
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("secret %q is corrupt: %v; create it again", name, err)
	}
	return v, nil
}

// List returns the names of all secrets with their keys (never their values).
func (s *Store) List() (map[string][]string, error) {
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string][]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(name, ".") {
			continue
		}
		v, err := s.Get(name)
		if err != nil {
			continue
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out[name] = keys
	}
	return out, nil
}

// Remove deletes a secret.
func (s *Store) Remove(name string) error {
	err := os.Remove(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("secret %q: %w", name, ErrNotFound)
	}
	return err
}

// ParsePairs parses KEY=VALUE arguments.
func ParsePairs(args []string) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not KEY=VALUE", a)
		}
		out[k] = v
	}
	return out, nil
}

// ParseDotenv reads a .env file: KEY=VALUE lines, "export " prefixes, # comments, and values
// in single or double quotes.
func ParseDotenv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: not KEY=VALUE", path, n)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			if v[0] == '"' {
				v = strings.NewReplacer(`\n`, "\n", `\"`, `"`, `\\`, `\`).Replace(v[1 : len(v)-1])
			} else {
				v = v[1 : len(v)-1]
			}
		} else if i := strings.Index(v, " #"); i >= 0 {
			v = strings.TrimSpace(v[:i])
		}
		out[k] = v
	}
	return out, sc.Err()
}
