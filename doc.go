// Package strata defines container images as code: an immutable method chain, one layer per
// method, after Modal's modal.Image.
//
//	img := strata.DebianSlim("3.13").
//		AptInstall("git").
//		UvPipInstall("torch<3").
//		Env(map[string]string{"HALT_AND_CATCH_FIRE": "0"}).
//		RunCommands("git clone https://github.com/modal-labs/agi")
//
// Chain methods never fail and never touch the disk. Every method has a With variant that
// takes an options struct with all of its parameters (the same names the spec file uses).
// Resolve validates the chain, hashes its local inputs and gives every layer a cache key.
package strata
