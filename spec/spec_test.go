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
		"FROM a\nONBUILD FROM b":    "line 2: ONBUILD cannot trigger FROM",
		"FROM a\nENV":               "line 2: ENV wants key=value pairs",
		"FROM a\nCOPY --form=b x y": "line 2: unknown flag: --form",
		"FROM a\nSHELL bash":        "SHELL wants a JSON array",
		"FROM a\nWORKDIR":           "",
	} {
		_, err := ParseDockerfile(strings.NewReader(src), true)
		if err == nil || (want != "" && !strings.Contains(err.Error(), want)) {
			t.Errorf("ParseDockerfile(%q) = %v, want %q", src, err, want)
		}
	}
}

// TestParseHeredocsAndNewInstructions: heredocs, HEALTHCHECK, ONBUILD, MAINTAINER, and the
// escape and syntax directives, as BuildKit reads them.
func TestParseHeredocsAndNewInstructions(t *testing.T) {
	src := "# syntax=docker/dockerfile:1\n# escape=`\nFROM a AS Build\nRUN <<EOF\necho one\nEOF\nCOPY <<'END' /f\n$NOT\nEND\nHEALTHCHECK --interval=5s CMD curl -f http://x/ || exit 1\nONBUILD RUN echo triggered\nMAINTAINER Jane <j@example.com>\n"
	df, err := ParseDockerfile(strings.NewReader(src), true)
	if err != nil {
		t.Fatal(err)
	}
	if df.Syntax != "docker/dockerfile:1" || df.Escape != "`" || df.Stages[0].Name != "build" {
		t.Errorf("directives %q %q, stage %q", df.Syntax, df.Escape, df.Stages[0].Name)
	}
	ins := df.Stages[0].Instructions
	if h := ins[0].Heredocs; len(h) != 1 || h[0].Content != "echo one\n" || !h[0].Expand || ins[0].Args[0] != "<<EOF" {
		t.Errorf("RUN heredoc %+v", ins[0])
	}
	if h := ins[1].Heredocs; len(h) != 1 || h[0].Expand || h[0].Content != "$NOT\n" {
		t.Errorf("COPY heredoc %+v", ins[1])
	}
	want := []string{"RUN <<EOF\necho one\nEOF", "COPY <<'END' /f\n$NOT\nEND", "HEALTHCHECK --interval=5s CMD curl -f http://x/ || exit 1", "ONBUILD RUN echo triggered", "MAINTAINER Jane <j@example.com>"}
	for i, w := range want {
		if got := ins[i].String(); got != w {
			t.Errorf("instruction %d prints as %q, want %q", i, got, w)
		}
	}
	if ins[2].Line != 10 {
		t.Errorf("HEALTHCHECK is on line %d", ins[2].Line)
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
	moved.Caches = []string{"pip"}
	if moved.ComputeKey("v1", "sha256:parent") != k {
		t.Error("method name, force flag, local paths, sizes, secret order or package caches changed the key")
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
