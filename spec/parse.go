package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// DockerfileStage is one FROM section of a Dockerfile.
type DockerfileStage struct {
	// From is the FROM word as written (it may hold $VARIABLES).
	From string
	// Name is the stage's "AS" name, if any.
	Name string
	// Platform is FROM's --platform value as written (it may hold $VARIABLES).
	Platform string
	// Line is the FROM line's number.
	Line int
	// Instructions follow the FROM line.
	Instructions []Instruction
}

// ParsedDockerfile is a parsed Dockerfile.
type ParsedDockerfile struct {
	// Args are the ARG declarations before the first FROM; they may be used in FROM lines.
	Args   []KV
	Stages []DockerfileStage
	// Escape is the escape character the "# escape=" directive chose ("\" by default).
	Escape string
	// Syntax is the frontend image a "# syntax=" directive names, if any.
	Syntax string
}

// ParseDockerfile parses Dockerfile text with BuildKit's parser, and checks every
// instruction with BuildKit's instructions package as docker build does; errors name the
// line. With stages false it parses a bare list of instructions (as dockerfile_commands
// takes), in which FROM is an error.
func ParseDockerfile(r io.Reader, stages bool) (*ParsedDockerfile, error) {
	text, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	res, err := parser.Parse(bytes.NewReader(text))
	if err != nil {
		var le *parser.LocationError
		if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
			return nil, fmt.Errorf("line %d: %w", le.Locations[0][0].Start.Line, err)
		}
		return nil, err
	}
	out := &ParsedDockerfile{Escape: string(res.EscapeToken)}
	if syntax, _, _, ok := parser.DetectSyntax(text); ok {
		out.Syntax = syntax
	}
	var cur *DockerfileStage
	if !stages {
		out.Stages = []DockerfileStage{{}}
		cur = &out.Stages[0]
	}
	for _, n := range res.AST.Children {
		cmd := strings.ToUpper(n.Value)
		if cmd == "FROM" {
			if !stages {
				return nil, fmt.Errorf("line %d: FROM is not allowed here: these lines extend the image before them; use from_dockerfile for a Dockerfile with its own FROM", n.StartLine)
			}
			words := nodeWords(n)
			st := DockerfileStage{Line: n.StartLine}
			switch {
			case len(words) == 1:
				st.From = words[0]
			case len(words) == 3 && strings.EqualFold(words[1], "AS"):
				st.From, st.Name = words[0], strings.ToLower(words[2])
			default:
				return nil, fmt.Errorf("line %d: FROM wants an image and an optional \"AS name\", got %q", n.StartLine, strings.Join(words, " "))
			}
			for _, f := range n.Flags {
				v, ok := strings.CutPrefix(f, "--platform=")
				if !ok {
					return nil, fmt.Errorf("line %d: FROM flag %s is not supported", n.StartLine, f)
				}
				st.Platform = v
			}
			out.Stages = append(out.Stages, st)
			cur = &out.Stages[len(out.Stages)-1]
			continue
		}
		in, err := nodeInstruction(n)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n.StartLine, err)
		}
		// BuildKit's own reading of the line checks its flags and arguments as docker build does.
		if _, err := instructions.ParseInstruction(n); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.StartLine, err)
		}
		if cur == nil {
			if in.Op != OpArg {
				return nil, fmt.Errorf("line %d: %s before the first FROM; a Dockerfile starts with FROM (only ARG may come before it)", n.StartLine, cmd)
			}
			out.Args = append(out.Args, in.Pairs...)
			continue
		}
		cur.Instructions = append(cur.Instructions, in)
	}
	if stages && len(out.Stages) == 0 {
		return nil, fmt.Errorf("no FROM instruction: a Dockerfile starts with FROM IMAGE (or FROM scratch)")
	}
	return out, nil
}

// ParseTriggers reads an image's ONBUILD triggers (its config's OnBuild) as instructions.
func ParseTriggers(triggers []string) ([]Instruction, error) {
	if len(triggers) == 0 {
		return nil, nil
	}
	df, err := ParseDockerfile(strings.NewReader(strings.Join(triggers, "\n")), false)
	if err != nil {
		return nil, fmt.Errorf("ONBUILD triggers: %w", err)
	}
	return df.Stages[0].Instructions, nil
}

func nodeWords(n *parser.Node) []string {
	var words []string
	for w := n.Next; w != nil; w = w.Next {
		words = append(words, w.Value)
	}
	return words
}

func nodeInstruction(n *parser.Node) (Instruction, error) {
	op := Op(strings.ToUpper(n.Value))
	in := Instruction{Op: op, Flags: n.Flags, JSON: n.Attributes["json"], Line: n.StartLine}
	// BuildKit's parser reads heredocs for RUN, COPY and ADD only.
	for _, h := range n.Heredocs {
		in.Heredocs = append(in.Heredocs, Heredoc{Name: h.Name, Content: h.Content, Expand: h.Expand, Chomp: h.Chomp})
	}
	words := nodeWords(n)
	switch op {
	case OpRun, OpCmd, OpEntrypoint, OpShell:
		in.Args = words
		if !in.JSON && len(words) > 1 {
			in.Args = []string{strings.Join(words, " ")}
		}
		if op == OpShell && !in.JSON {
			return in, fmt.Errorf("SHELL wants a JSON array, such as SHELL [\"/bin/bash\", \"-c\"]")
		}
	case OpEnv, OpLabel:
		// BuildKit gives (key, value, separator) triples; the separator is "" for the legacy
		// "ENV key value with spaces" form, whose value is one literal word.
		if len(words) == 0 || len(words)%3 != 0 {
			return in, fmt.Errorf("%s wants key=value pairs", op)
		}
		for i := 0; i < len(words); i += 3 {
			v := words[i+1]
			if words[i+2] == "" {
				v = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
			}
			in.Pairs = append(in.Pairs, KV{Key: words[i], Value: v})
		}
	case OpArg:
		for _, w := range words {
			k, v, ok := strings.Cut(w, "=")
			in.Pairs = append(in.Pairs, KV{Key: k, Value: v, NoValue: !ok})
		}
	case OpCopy, OpAdd:
		if len(words) < 2 && !(len(words) == 1 && len(in.Heredocs) > 0) {
			return in, fmt.Errorf("%s wants at least one source and a destination", op)
		}
		in.Args = words
		in.JSON = false
	case OpWorkdir, OpUser, OpStopSignal:
		if len(words) != 1 {
			return in, fmt.Errorf("%s wants exactly one argument", op)
		}
		in.Args = words
	case OpExpose, OpVolume:
		in.Args = words
		in.JSON = false
	case OpMaintainer:
		in.Args = []string{strings.Join(words, " ")}
	case OpHealthcheck:
		// The line after its flags, as written ("NONE", "CMD curl -f ...", "CMD [...]"):
		// BuildKit's instructions package reads it when the config is made.
		rest := strings.TrimSpace(n.Original)
		rest = strings.TrimSpace(rest[len(n.Value):])
		for _, f := range n.Flags {
			rest = strings.TrimSpace(strings.TrimPrefix(rest, f))
		}
		in.Args, in.JSON = []string{rest}, false
	case OpOnbuild:
		// The trigger, kept as its Dockerfile line.
		if n.Next == nil || len(n.Next.Children) == 0 {
			return in, fmt.Errorf("ONBUILD wants an instruction")
		}
		trigger := strings.TrimSpace(n.Next.Children[0].Original)
		switch strings.ToUpper(n.Next.Children[0].Value) {
		case "ONBUILD", "FROM", "MAINTAINER":
			return in, fmt.Errorf("ONBUILD cannot trigger %s", strings.ToUpper(n.Next.Children[0].Value))
		}
		in.Args = []string{trigger}
	default:
		return in, fmt.Errorf("%s is not supported by strata's builder", op)
	}
	return in, nil
}
