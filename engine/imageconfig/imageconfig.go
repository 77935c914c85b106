// Package imageconfig applies Dockerfile instructions to an image config: ENV, ARG, LABEL,
// EXPOSE, VOLUME, USER, WORKDIR, STOPSIGNAL, SHELL, ENTRYPOINT and CMD change only the config,
// and words expand against ARG and ENV values exactly as Docker expands them (BuildKit's
// shell lexer). It does no I/O, so every engine shares it and it is tested without root.
package imageconfig

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"github.com/strata-build/strata/spec"
)

// DefaultPath is the PATH of a container whose image sets none, as in Docker.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// State is an image config as one layer's instructions change it, with the ARG values in
// scope.
type State struct {
	Config v1.Config
	// Author is the image's author (MAINTAINER).
	Author string
	// Args are the ARG values in scope, as KEY=VALUE.
	Args []string

	escape     rune
	buildArgs  map[string]string
	globalArgs map[string]string
}

// New starts a layer's state from its parent's config (copied, never shared), with the ARG
// values in scope before it (a Dockerfile stage's earlier instructions'), the layer's build
// args and the global ARG values of its Dockerfile.
func New(parent v1.Config, author string, args []string, l *spec.Layer) *State {
	s := &State{Config: Copy(parent), Author: author, Args: append([]string(nil), args...), escape: '\\', buildArgs: map[string]string{}, globalArgs: map[string]string{}}
	if l.Escape != "" {
		s.escape = []rune(l.Escape)[0]
	}
	for _, kv := range l.BuildArgs {
		s.buildArgs[kv.Key] = kv.Value
	}
	for _, kv := range l.GlobalArgs {
		s.globalArgs[kv.Key] = kv.Value
	}
	return s
}

// Env is what words expand against and RUN steps see: ARG values, then ENV, which wins.
func (s *State) Env() []string {
	return append(append([]string(nil), s.Args...), s.Config.Env...)
}

// Expand expands $VARIABLES and quotes in a word as a Dockerfile builder does.
func (s *State) Expand(word string) (string, error) {
	out, _, err := shell.NewLex(s.escape).ProcessWord(word, shell.EnvsFromSlice(s.Env()))
	return out, err
}

// ExpandHeredoc expands $VARIABLES in a here-document's text, as BuildKit does for one
// whose delimiter is not quoted.
func (s *State) ExpandHeredoc(h spec.Heredoc) (string, error) {
	text := h.Content
	if h.Chomp {
		text = Chomp(text)
	}
	if !h.Expand {
		return text, nil
	}
	lex := shell.NewLex(s.escape)
	lex.RawQuotes, lex.RawEscapes = true, true
	out, _, err := lex.ProcessWord(text, shell.EnvsFromSlice(s.Env()))
	return out, err
}

// Chomp strips leading tabs from every line ("<<-EOF").
func Chomp(text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimLeft(l, "\t")
	}
	return strings.Join(lines, "\n")
}

// Shell is the shell that shell-form instructions run with.
func (s *State) Shell() []string {
	if len(s.Config.Shell) > 0 {
		return s.Config.Shell
	}
	return []string{"/bin/sh", "-c"}
}

// Argv turns an exec-form or shell-form RUN, CMD or ENTRYPOINT into an argv.
func (s *State) Argv(in spec.Instruction) []string {
	if in.JSON {
		return append([]string{}, in.Args...)
	}
	if len(in.Args) == 0 {
		return nil
	}
	return append(append([]string{}, s.Shell()...), in.Args[0])
}

// Apply applies an instruction that changes the config. It reports false, and changes
// nothing, for RUN, COPY and ADD, which the engine executes. For WORKDIR it sets the working
// folder; the engine also creates it.
func (s *State) Apply(in spec.Instruction) (bool, error) {
	cfg := &s.Config
	switch in.Op {
	case spec.OpRun, spec.OpCopy, spec.OpAdd:
		return false, nil
	case spec.OpEnv:
		// As Docker: every value of one ENV sees the variables as they were before it.
		values := make([]string, len(in.Pairs))
		for i, kv := range in.Pairs {
			v, err := s.Expand(kv.Value)
			if err != nil {
				return true, err
			}
			values[i] = v
		}
		for i, kv := range in.Pairs {
			cfg.Env = SetEnv(cfg.Env, kv.Key, values[i])
		}
	case spec.OpArg:
		for _, kv := range in.Pairs {
			v, ok := s.buildArgs[kv.Key]
			switch {
			case ok:
			case kv.NoValue:
				// As Docker: a stage's bare ARG takes the value declared before FROM, if any.
				if v, ok = s.globalArgs[kv.Key]; !ok {
					continue
				}
			default:
				var err error
				if v, err = s.Expand(kv.Value); err != nil {
					return true, err
				}
			}
			s.Args = SetEnv(s.Args, kv.Key, v)
		}
	case spec.OpLabel:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range in.Pairs {
			k, err := s.Expand(kv.Key)
			if err != nil {
				return true, err
			}
			v, err := s.Expand(kv.Value)
			if err != nil {
				return true, err
			}
			cfg.Labels[k] = v
		}
	case spec.OpWorkdir:
		dir, err := s.Expand(in.Args[0])
		if err != nil {
			return true, err
		}
		if !path.IsAbs(dir) {
			dir = path.Join("/", cfg.WorkingDir, dir)
		}
		cfg.WorkingDir = path.Clean(dir)
	case spec.OpUser:
		u, err := s.Expand(in.Args[0])
		if err != nil {
			return true, err
		}
		cfg.User = u
	case spec.OpExpose:
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, a := range in.Args {
			p, err := s.Expand(a)
			if err != nil {
				return true, err
			}
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			cfg.ExposedPorts[p] = struct{}{}
		}
	case spec.OpVolume:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, a := range in.Args {
			v, err := s.Expand(a)
			if err != nil {
				return true, err
			}
			cfg.Volumes[v] = struct{}{}
		}
	case spec.OpStopSignal:
		sig, err := s.Expand(in.Args[0])
		if err != nil {
			return true, err
		}
		cfg.StopSignal = sig
	case spec.OpShell:
		cfg.Shell = append([]string(nil), in.Args...)
	case spec.OpEntrypoint:
		cfg.Entrypoint = s.Argv(in)
		// As in Docker, a new entrypoint drops the inherited command.
		cfg.Cmd = nil
	case spec.OpMaintainer:
		s.Author = in.Args[0]
	case spec.OpOnbuild:
		// Recorded; they run when an image is built FROM this one.
		cfg.OnBuild = append(cfg.OnBuild, in.Args[0])
	case spec.OpHealthcheck:
		h, _, err := in.Healthcheck()
		if err != nil {
			return true, err
		}
		cfg.Healthcheck = h
	case spec.OpCmd:
		cfg.Cmd = s.Argv(in)
	default:
		return true, fmt.Errorf("%s is not supported", in.Op)
	}
	return true, nil
}

// SetEnv sets key in a KEY=VALUE list, in place if present.
func SetEnv(env []string, key, value string) []string {
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			env[i] = key + "=" + value
			return env
		}
	}
	return append(env, key+"="+value)
}

// UnsetEnv removes key from a KEY=VALUE list.
func UnsetEnv(env []string, key string) []string {
	return slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
}

// Fill adds KEY=VALUE pairs whose keys env does not set: defaults that never override.
func Fill(env []string, defaults ...string) []string {
	for _, kv := range defaults {
		k, _, _ := strings.Cut(kv, "=")
		if !Has(env, k) {
			env = append(env, kv)
		}
	}
	return env
}

// Has reports whether env sets key.
func Has(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

// Copy copies a config deeply, so that a layer's changes never reach its parent's.
func Copy(c v1.Config) v1.Config {
	c.Env = append([]string(nil), c.Env...)
	c.Cmd = append([]string(nil), c.Cmd...)
	c.Entrypoint = append([]string(nil), c.Entrypoint...)
	c.Shell = append([]string(nil), c.Shell...)
	c.Labels = copyMap(c.Labels)
	c.ExposedPorts = copySet(c.ExposedPorts)
	c.Volumes = copySet(c.Volumes)
	c.OnBuild = append([]string(nil), c.OnBuild...)
	if c.Healthcheck != nil {
		h := *c.Healthcheck
		h.Test = append([]string(nil), h.Test...)
		c.Healthcheck = &h
	}
	return c
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func copySet(m map[string]struct{}) map[string]struct{} {
	if m == nil {
		return nil
	}
	out := make(map[string]struct{}, len(m))
	for k := range m {
		out[k] = struct{}{}
	}
	return out
}

// StepEnv is a RUN step's environment: the image's ARG and ENV values (image), the proxy
// build args (HTTP_PROXY...), the layer's build env, its secrets and SOURCE_DATE_EPOCH;
// then, where none of these set it, a default PATH. Every engine runs steps with it.
func StepEnv(image []string, l *spec.Layer, secretEnv []string) []string {
	env := append([]string(nil), image...)
	for _, kv := range l.ProxyEnv {
		env = SetEnv(env, kv.Key, kv.Value)
	}
	for _, kv := range l.Env {
		env = SetEnv(env, kv.Key, kv.Value)
	}
	for _, kv := range secretEnv {
		k, v, _ := strings.Cut(kv, "=")
		env = SetEnv(env, k, v)
	}
	if l.SourceDateEpoch != nil {
		env = SetEnv(env, "SOURCE_DATE_EPOCH", strconv.FormatInt(*l.SourceDateEpoch, 10))
	}
	return Fill(env, "PATH="+DefaultPath)
}

// Script is a heredoc that a RUN executes by its shebang's interpreter: the engine places
// it at /dev/pipes/Name, read-only, for the step.
type Script struct {
	Name string
	Data string
}

// RunArgv is a RUN's argv. With here-documents it follows BuildKit: a lone heredoc is the
// script, run by its shebang's interpreter (the returned Script, which the engine mounts at
// /dev/pipes) or by the shell; a command that reads heredocs gets them back as text for
// the shell.
func (s *State) RunArgv(in spec.Instruction) ([]string, *Script, error) {
	if len(in.Heredocs) == 0 {
		return s.Argv(in), nil, nil
	}
	if in.JSON || len(in.Args) != 1 {
		return nil, nil, fmt.Errorf("a RUN with a heredoc must be in shell form")
	}
	h := in.Heredocs[0]
	if len(in.Heredocs) == 1 && spec.IsHeredocSource(in, strings.TrimSpace(in.Args[0])) {
		data := h.Content
		if h.Chomp {
			data = Chomp(data)
		}
		if strings.HasPrefix(data, "#!") {
			argv := s.Argv(spec.Instruction{Op: spec.OpRun, Args: []string{"/dev/pipes/" + h.Name}})
			return argv, &Script{Name: h.Name, Data: data}, nil
		}
		return s.Argv(spec.Instruction{Op: spec.OpRun, Args: []string{data}}), nil, nil
	}
	var b strings.Builder
	b.WriteString(in.Args[0])
	for _, h := range in.Heredocs {
		b.WriteString("\n" + h.Content + h.Name)
	}
	return s.Argv(spec.Instruction{Op: spec.OpRun, Args: []string{b.String()}}), nil, nil
}
