package home

import "testing"

func TestData(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "/x/data")
	if got := Data(); got != "/x/data/strata" {
		t.Errorf("with XDG_DATA_HOME: %s", got)
	}
	t.Setenv("XDG_DATA_HOME", "relative") // not absolute: ignored, as the XDG spec says
	t.Setenv("HOME", "/home/u")
	if got := Data(); got != "/home/u/.local/share/strata" {
		t.Errorf("without: %s", got)
	}
}

func TestDir(t *testing.T) {
	t.Setenv("STRATA_HOME", "/srv/strata")
	if got := Dir(); got != "/srv/strata" {
		t.Errorf("with STRATA_HOME: %s", got)
	}
}
