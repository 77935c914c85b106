package imageconfig

import (
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/spec"
)

func parse(t *testing.T, lines string) []spec.Instruction {
	t.Helper()
	df, err := spec.ParseDockerfile(strings.NewReader(lines), false)
	if err != nil {
		t.Fatal(err)
	}
	return df.Stages[0].Instructions
}

func apply(t *testing.T, s *State, lines string) {
	t.Helper()
	for _, in := range parse(t, lines) {
		handled, err := s.Apply(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if !handled {
			t.Fatalf("%s was not applied", in)
		}
	}
}

func TestApplyBuildsTheConfigDockerWould(t *testing.T) {
	parent := v1.Config{Env: []string{"PATH=/usr/bin", "KEEP=1"}, Cmd: []string{"bash"}, Labels: map[string]string{"from": "base"}}
	s := New(parent, "", nil, &spec.Layer{})
	apply(t, s, `ARG NAME=world
ENV GREETING="hello $NAME" PATH=/opt/bin:$PATH
LABEL team=ml "with space"="$GREETING"
EXPOSE 8080 53/udp
VOLUME /data
WORKDIR /srv
WORKDIR app
USER app:staff
STOPSIGNAL SIGTERM
SHELL ["/bin/bash", "-c"]
ENTRYPOINT exec server
CMD ["--port", "8080"]`)
	want := v1.Config{
		Env:          []string{"PATH=/opt/bin:/usr/bin", "KEEP=1", "GREETING=hello world"},
		Labels:       map[string]string{"from": "base", "team": "ml", "with space": "hello world"},
		ExposedPorts: map[string]struct{}{"8080/tcp": {}, "53/udp": {}},
		Volumes:      map[string]struct{}{"/data": {}},
		WorkingDir:   "/srv/app",
		User:         "app:staff",
		StopSignal:   "SIGTERM",
		Shell:        []string{"/bin/bash", "-c"},
		Entrypoint:   []string{"/bin/bash", "-c", "exec server"},
		Cmd:          []string{"--port", "8080"},
	}
	if !reflect.DeepEqual(s.Config, want) {
		t.Errorf("config\n got %+v\nwant %+v", s.Config, want)
	}
	// The parent's config is untouched.
	if parent.Env[0] != "PATH=/usr/bin" || parent.Labels["team"] != "" || parent.Cmd[0] != "bash" {
		t.Errorf("the parent config changed: %+v", parent)
	}
	// ARG values are in scope for steps, not in the image.
	if !reflect.DeepEqual(s.Args, []string{"NAME=world"}) {
		t.Errorf("args %v", s.Args)
	}
}

func TestEnvValuesSeeTheVariablesBeforeTheLine(t *testing.T) {
	s := New(v1.Config{Env: []string{"A=1"}}, "", nil, &spec.Layer{})
	apply(t, s, "ENV A=changed G=$A\nENV H=$A")
	if want := []string{"A=changed", "G=1", "H=changed"}; !reflect.DeepEqual(s.Config.Env, want) {
		t.Errorf("env %v, want %v", s.Config.Env, want)
	}
}

func TestEntrypointDropsTheInheritedCmd(t *testing.T) {
	s := New(v1.Config{Cmd: []string{"bash"}}, "", nil, &spec.Layer{})
	apply(t, s, `ENTRYPOINT ["/app"]`)
	if s.Config.Cmd != nil {
		t.Errorf("cmd %v", s.Config.Cmd)
	}
}

// TestArgValuesFollowDocker: a build arg beats a default; a stage's bare ARG takes the value
// declared before FROM (which Docker gives, and strata used to leave empty); an ARG nobody
// set stays unset.
func TestArgValuesFollowDocker(t *testing.T) {
	l := &spec.Layer{
		BuildArgs:  []spec.KV{{Key: "OVERRIDDEN", Value: "from-build-arg"}},
		GlobalArgs: []spec.KV{{Key: "V", Value: "1.0"}, {Key: "OVERRIDDEN", Value: "global"}},
	}
	s := New(v1.Config{}, "", nil, l)
	apply(t, s, `ARG V
ARG OVERRIDDEN=default
ARG UNSET
ARG DERIVED=v$V`)
	want := []string{"V=1.0", "OVERRIDDEN=from-build-arg", "DERIVED=v1.0"}
	if !reflect.DeepEqual(s.Args, want) {
		t.Errorf("args %v, want %v", s.Args, want)
	}
}

func TestRunCopyAndAddAreLeftToTheEngine(t *testing.T) {
	s := New(v1.Config{}, "", nil, &spec.Layer{})
	for _, in := range parse(t, "RUN true\nCOPY a b\nADD c d") {
		if handled, err := s.Apply(in); handled || err != nil {
			t.Errorf("%s: handled %v, %v", in, handled, err)
		}
	}
}

func TestFillNeverOverrides(t *testing.T) {
	env := Fill([]string{"A=mine"}, "A=default", "B=default")
	if !reflect.DeepEqual(env, []string{"A=mine", "B=default"}) {
		t.Errorf("got %v", env)
	}
}

func TestRunArgv(t *testing.T) {
	s := New(v1.Config{}, "", nil, &spec.Layer{})
	script := spec.Instruction{Op: spec.OpRun, Args: []string{"<<EOF"}, Heredocs: []spec.Heredoc{{Name: "EOF", Content: "#!/usr/bin/env python3\nprint(1)\n"}}}
	argv, sc, err := s.RunArgv(script)
	if err != nil || sc == nil || sc.Name != "EOF" || sc.Data != "#!/usr/bin/env python3\nprint(1)\n" || strings.Join(argv, " ") != "/bin/sh -c /dev/pipes/EOF" {
		t.Errorf("a shebang heredoc: %q %+v %v", argv, sc, err)
	}
	shell := spec.Instruction{Op: spec.OpRun, Args: []string{"<<EOF"}, Heredocs: []spec.Heredoc{{Name: "EOF", Content: "echo a\necho b\n"}}}
	if argv, sc, err := s.RunArgv(shell); err != nil || sc != nil || strings.Join(argv, " ") != "/bin/sh -c echo a\necho b\n" {
		t.Errorf("a shell heredoc: %q %+v %v", argv, sc, err)
	}
	if _, _, err := s.RunArgv(spec.Instruction{Op: spec.OpRun, JSON: true, Args: []string{"cat"}, Heredocs: shell.Heredocs}); err == nil {
		t.Error("a heredoc in exec form")
	}
}

// TestPackageCacheOwned: a step that configures apt itself (its own proxy or APT_CONFIG)
// keeps it; an empty value configures nothing; pip has no such variable.
func TestPackageCacheOwned(t *testing.T) {
	apt, _ := LookupPackageCache("apt")
	pip, _ := LookupPackageCache("pip")
	for _, c := range []struct {
		env  []string
		want bool
	}{
		{[]string{"PATH=/bin"}, false},
		{[]string{"http_proxy=http://proxy:3128"}, true},
		{[]string{"HTTP_PROXY=http://proxy:3128"}, true},
		{[]string{"APT_CONFIG=/etc/my-apt.conf"}, true},
		{[]string{"APT_CONFIG="}, false},
		{[]string{"https_proxy=http://proxy:3128"}, false},
	} {
		if got := apt.Owned(c.env); got != c.want {
			t.Errorf("apt with %q: owned %v", c.env, got)
		}
	}
	if pip.Owned([]string{"http_proxy=http://proxy:3128", "APT_CONFIG=/x"}) {
		t.Error("pip is owned by apt's variables")
	}
}
