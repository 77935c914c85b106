package spec

import (
	"strings"
	"testing"
)

func TestDockerfileRoundTrip(t *testing.T) {
	src := strings.Join([]string{
		`RUN apt-get update && apt-get install -y git`,
		`RUN ["python3", "-c", "print(1)"]`,
		`ENV A=1 B="x y"`,
		`ENV LEGACY some value`,
		`WORKDIR /app`,
		`COPY --chmod=755 --chown=1000:1000 a b /dst/`,
		`ADD archive.tar /opt/`,
		`USER nobody`,
		`ENTRYPOINT ["/bin/sh", "-c"]`,
		`CMD echo hi`,
		`SHELL ["/bin/bash", "-c"]`,
		`LABEL org.opencontainers.image.title=strata`,
		`EXPOSE 80 443/tcp`,
		`ARG V=1 W`,
		`VOLUME /data`,
		`STOPSIGNAL SIGTERM`,
	}, "\n")
	df, err := ParseDockerfile(strings.NewReader(src), false)
	if err != nil {
		t.Fatal(err)
	}
	var printed []string
	for _, in := range df.Stages[0].Instructions {
		printed = append(printed, in.String())
	}
	want := strings.Replace(src, `ENV LEGACY some value`, `ENV LEGACY="some value"`, 1)
	if got := strings.Join(printed, "\n"); got != want {
		t.Errorf("round trip:\n%s\nwant:\n%s", got, want)
	}
	// What prints parses back to the same instructions.
	again, err := ParseDockerfile(strings.NewReader(strings.Join(printed, "\n")), false)
	if err != nil {
		t.Fatal(err)
	}
	for i, in := range again.Stages[0].Instructions {
		if in.String() != printed[i] {
			t.Errorf("second round: %s, want %s", in.String(), printed[i])
		}
	}
}

func TestParseStages(t *testing.T) {
	df, err := ParseDockerfile(strings.NewReader("ARG PY=3.13\nFROM python:${PY}-slim AS build\nRUN make\n"), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(df.Args) != 1 || df.Stages[0].From != "python:${PY}-slim" || df.Stages[0].Name != "build" || len(df.Stages[0].Instructions) != 1 {
		t.Errorf("parsed %+v", df)
	}
	for src, want := range map[string]string{
		"RUN x":                     "line 1: RUN before the first FROM",
		"# comment\n":               "no instructions",
		"FROM a\nONBUILD RUN x":     "line 2: ONBUILD is not supported",
		"FROM a\nRUN <<EOF\nx\nEOF": "heredoc is not supported",
		"FROM a\nSHELL bash":        "SHELL wants a JSON array",
		"FROM a\nWORKDIR":           "",
	} {
		_, err := ParseDockerfile(strings.NewReader(src), true)
		if err == nil || (want != "" && !strings.Contains(err.Error(), want)) {
			t.Errorf("ParseDockerfile(%q) = %v, want %q", src, err, want)
		}
	}
}

func TestKeyIgnoresWhatDoesNotChangeTheBuild(t *testing.T) {
	l := &Layer{
		Method:       "run_commands",
		Instructions: []Instruction{{Op: OpRun, Args: []string{"make"}}},
		Context:      []ContextFile{{Path: "b", Digest: "sha256:2", Source: "/x/b", Size: 1}, {Path: "a", Digest: "sha256:1", Source: "/x/a"}},
		Secrets:      []string{"s2", "s1"},
	}
	k := l.ComputeKey("v1", "sha256:parent")
	moved := *l
	moved.Method = "dockerfile_commands"
	moved.ForceBuild = true
	moved.Context = []ContextFile{{Path: "a", Digest: "sha256:1", Source: "/elsewhere/a"}, {Path: "b", Digest: "sha256:2", Source: "/elsewhere/b", Size: 9}}
	moved.Secrets = []string{"s1", "s2"}
	if moved.ComputeKey("v1", "sha256:parent") != k {
		t.Error("method name, force flag, local paths, sizes or secret order changed the key")
	}
	for name, change := range map[string]func(*Layer){
		"builder": nil,
		"parent":  nil,
		"digest": func(c *Layer) {
			c.Context = []ContextFile{{Path: "a", Digest: "sha256:9"}, {Path: "b", Digest: "sha256:2"}}
		},
		"mode": func(c *Layer) {
			c.Context = []ContextFile{{Path: "a", Digest: "sha256:1", Mode: 0o755}, {Path: "b", Digest: "sha256:2"}}
		},
		"secret": func(c *Layer) { c.Secrets = []string{"s1"} },
		"gpu":    func(c *Layer) { c.GPU = &GPU{Type: "H100", Count: 1} },
		"env":    func(c *Layer) { c.Env = []KV{{Key: "A", Value: "1"}} },
		"volume": func(c *Layer) { c.Volumes = []VolumeMount{{Name: "v", Path: "/v"}} },
		"arg":    func(c *Layer) { c.BuildArgs = []KV{{Key: "A", Value: "1"}} },
	} {
		c := *l
		builder, parent := "v1", "sha256:parent"
		switch name {
		case "builder":
			builder = "v2"
		case "parent":
			parent = "sha256:other"
		default:
			change(&c)
		}
		if c.ComputeKey(builder, parent) == k {
			t.Errorf("changing the %s kept the key", name)
		}
	}
}
