// Command goequiv builds, in Go, the method chains of python/tests/chains.py and prints
// {"chain name": [layer keys...]} as JSON, for test_spec_keys to compare with the Python form.
// It resolves them against the store that STRATA_HOME names, as strata spec does.
// It lives under testdata so that `go test ./...` and `go vet ./...` of the repository skip it.
//
//	go run ./python/tests/testdata/goequiv FIXTURES_DIR
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/strata-build/strata"
)

func main() {
	strata.Main() // as an ordinary user: runs the program again in a user namespace
	dir := os.Args[1]
	lo := func(o strata.LayerOptions) strata.LayerOptions { return o }
	pipOpts := strata.PipOptions{IndexURL: "http://127.0.0.1:1/simple", Pre: true, ExtraOptions: "--no-deps"}
	frozen := false
	chains := map[string]strata.Image{
		"debian_steps": strata.DebianSlim("3.13").
			AptInstall("git", "curl", "jq").
			PipInstallWith(strata.PipInstallOptions{Packages: []string{"six==1.16.0", "attrs==23.1.0"}, PipOptions: pipOpts}).
			Env(map[string]string{"A": "1", "B": "two words"}).
			Workdir("/app").
			RunCommandsWith(strata.RunCommandsOptions{
				Commands: []string{"echo one", "echo two"},
				Volumes:  map[string]string{"/root/.cache/pip": "pip-cache"},
				LayerOptions: lo(strata.LayerOptions{Env: map[string]string{"X": "y"}, Secrets: []string{"reg-creds"},
					GPU: "a10g:2", ForceBuild: true}),
			}).
			DockerfileCommandsWith(strata.DockerfileCommandsOptions{
				Commands:     []string{"RUN echo hi", "COPY /config.json /etc/config.json"},
				ContextFiles: map[string]string{"/config.json": "config.json"},
			}).
			Entrypoint("/bin/sh", "-c").
			Shell("/bin/bash", "-c").
			Cmd("python3"),
		"python_packages": strata.DebianSlim("").
			UvPipInstallWith(strata.UvPipInstallOptions{Packages: []string{"six==1.16.0"}, Requirements: []string{"requirements.txt"},
				UvVersion: "0.9.5", PipOptions: strata.PipOptions{FindLinks: "/wheels"}}).
			UvSyncWith(strata.UvSyncOptions{UvProjectDir: "uvproj", Groups: []string{"dev"}, Extras: []string{"x"}, Frozen: &frozen, ExtraOptions: "--verbose"}).
			PipInstallFromRequirementsWith(strata.PipInstallFromRequirementsOptions{RequirementsTxt: "requirements.txt",
				PipOptions: strata.PipOptions{FindLinks: "/wheels", ExtraIndexURL: "http://127.0.0.1:1/simple"}}).
			PipInstallFromPyprojectWith(strata.PipInstallFromPyprojectOptions{PyprojectToml: "pyproj/pyproject.toml", OptionalDependencies: []string{"dev"}}).
			PipInstallPrivateReposWith(strata.PipInstallPrivateReposOptions{Repositories: []string{"github.com/org/private@v1"}, GitUser: "bot",
				LayerOptions: strata.LayerOptions{Secrets: []string{"gh-token"}}}).
			PoetryInstallFromFileWith(strata.PoetryInstallFromFileOptions{PoetryPyprojectToml: "poetry/pyproject.toml", With: []string{"dev"},
				Only: []string{"main"}, PoetryVersion: "1.8.3"}),
		"local_files": strata.DebianSlim("3.11").
			AddLocalFileWith(strata.AddLocalFileOptions{LocalPath: "config.json", RemotePath: "/etc/app/", Copy: true}).
			AddLocalDirWith(strata.AddLocalDirOptions{LocalPath: "assets", RemotePath: "/assets", Copy: true, Ignore: []string{"*.log"}}).
			RunCommands("ls /assets").
			AddLocalPythonSource("mymod"),
		"micromamba": strata.Micromamba("3.12").
			MicromambaInstallWith(strata.MicromambaInstallOptions{Packages: []string{"numpy", "scipy"}, SpecFile: "env.yml", Channels: []string{"conda-forge"}}),
		"from_registry": strata.FromRegistryWith(strata.FromRegistryOptions{Tag: "python:3.13-slim", Secret: "reg-creds", AddPython: "3.12",
			SetupDockerfileCommands: []string{"RUN echo setup"}}).PipInstall("six==1.16.0"),
		"from_aws_ecr":               strata.FromAWSECRWith(strata.FromRegistryOptions{Tag: "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1", Secret: "reg-creds"}),
		"from_gcp_artifact_registry": strata.FromGCPArtifactRegistryWith(strata.FromRegistryOptions{Tag: "us-docker.pkg.dev/proj/repo/app:v1", Secret: "reg-creds", ForceBuild: true}),
		"from_dockerfile": strata.FromDockerfileWith(strata.FromDockerfileOptions{Path: "docker/Dockerfile", ContextDir: "docker",
			BuildArgs: map[string]string{"V": "2"}}).RunCommands("cat /data.txt"),
		"from_scratch": strata.FromScratch().AddLocalFileWith(strata.AddLocalFileOptions{LocalPath: "config.json", RemotePath: "/config.json", Copy: true}),
	}
	// Resolved as strata spec and strata build resolve them: against the store ($STRATA_HOME),
	// where a registry tag already pulled is keyed by the digest it was pulled at.
	c, err := strata.Open()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out := map[string][]string{}
	for name, img := range chains {
		plan, err := c.Resolve(context.Background(), img, strata.WithResolveOptions(strata.WithDir(dir), strata.WithHashCache("")))
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			c.Close()
			os.Exit(1)
		}
		for _, l := range plan.Layers {
			out[name] = append(out[name], l.Key)
		}
	}
	c.Close()
	json.NewEncoder(os.Stdout).Encode(out)
}
