package secrets

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCreateGetListRemove(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	s := Open(dir)
	if err := s.Create("hf", map[string]string{"HF_TOKEN": "abc", "OTHER": "x"}); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, "hf.json"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode %v (%v), want 0600", info.Mode().Perm(), err)
	}
	if d, _ := os.Stat(dir); d.Mode().Perm() != 0o700 {
		t.Errorf("secret folder mode %v, want 0700", d.Mode().Perm())
	}
	v, err := s.Get("hf")
	if err != nil || v["HF_TOKEN"] != "abc" {
		t.Fatalf("get: %v %v", v, err)
	}
	all, _ := s.List()
	if strings.Join(all["hf"], ",") != "HF_TOKEN,OTHER" {
		t.Errorf("list: %v", all)
	}
	if err := s.Remove("hf"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("hf"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "strata secret create hf") {
		t.Errorf("missing secret: %v", err)
	}
	for name, vals := range map[string]map[string]string{
		"bad name": {"A": "1"}, "ok": {"1BAD": "x"}, "empty": {},
	} {
		if err := s.Create(name, vals); err == nil {
			t.Errorf("Create(%q, %v) accepted", name, vals)
		}
	}
}

func TestParseDotenv(t *testing.T) {
	p := filepath.Join(t.TempDir(), ".env")
	os.WriteFile(p, []byte("# comment\nexport A=1\nB = \"two words\"\nC='single $x'\nD=plain # trailing\n\n"), 0o600)
	v, err := ParseDotenv(p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "1", "B": "two words", "C": "single $x", "D": "plain"}
	for k, w := range want {
		if v[k] != w {
			t.Errorf("%s = %q, want %q", k, v[k], w)
		}
	}
	if _, err := ParsePairs([]string{"NOEQUALS"}); err == nil {
		t.Error("KEY without =VALUE accepted")
	}
}
