package main

import (
	"strings"
	"testing"
)

func TestNeedsEngine(t *testing.T) {
	for args, want := range map[string]bool{
		"":                       false,
		"version":                false,
		"--help":                 false,
		"help build":             false,
		"completion bash":        false,
		"build -f x.yaml":        true,
		"--progress plain build": true,
		"run img -- version":     true,
		"images":                 true,
	} {
		if got := needsEngine(strings.Fields(args)); got != want {
			t.Errorf("needsEngine(%q) = %v, want %v", args, got, want)
		}
	}
}
