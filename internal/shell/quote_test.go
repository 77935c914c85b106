package shell

import "testing"

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":           "''",
		"git":        "git",
		"torch<3":    "'torch<3'",
		"a b":        "'a b'",
		"it's":       `'it'"'"'s'`,
		"pandas==2":  "pandas==2",
		"x[extra]":   "'x[extra]'",
		"/usr/bin/x": "/usr/bin/x",
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
	if got := Join([]string{"a", "b c"}); got != "a 'b c'" {
		t.Errorf("Join = %s", got)
	}
}
