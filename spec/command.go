package spec

import (
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// parseFlags parses the instruction's flags with BuildKit's instructions package, the one
// docker build uses, on a stand-in line with the same operation and flags: the words are not
// needed, and a RUN from the SDK may span lines.
func (in Instruction) parseFlags(words string) (any, error) {
	line := string(in.Op)
	for _, f := range in.Flags {
		if strings.ContainsAny(f, "\n\r") {
			return nil, fmt.Errorf("%s flag %q holds a line break", in.Op, f)
		}
		line += " " + f
	}
	res, err := parser.Parse(strings.NewReader(line + " " + words))
	if err != nil {
		return nil, err
	}
	if len(res.AST.Children) != 1 {
		return nil, fmt.Errorf("%s: cannot read its flags", in.Op)
	}
	v, err := instructions.ParseInstruction(res.AST.Children[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Op, err)
	}
	return v, nil
}

// RunFlags returns a RUN's flags as BuildKit reads them: use instructions.GetMounts,
// GetNetwork and GetSecurity on the result, after Expand.
func (in Instruction) RunFlags() (*instructions.RunCommand, error) {
	if in.Op != OpRun {
		return nil, fmt.Errorf("%s is not RUN", in.Op)
	}
	v, err := in.parseFlags("true")
	if err != nil {
		return nil, err
	}
	return v.(*instructions.RunCommand), nil
}

// CopyFlags are the flags of COPY and ADD.
type CopyFlags struct {
	From     string
	Chown    string
	Chmod    string
	Link     bool
	Parents  bool
	Excludes []string
	// Checksum and KeepGitDir are ADD's.
	Checksum   string
	KeepGitDir bool
}

// CopyFlags returns the flags of a COPY or ADD, read by BuildKit's instructions package,
// which refuses unknown ones.
func (in Instruction) CopyFlags() (CopyFlags, error) {
	if in.Op != OpCopy && in.Op != OpAdd {
		return CopyFlags{}, fmt.Errorf("%s is not COPY or ADD", in.Op)
	}
	v, err := in.parseFlags("src dst")
	if err != nil {
		return CopyFlags{}, err
	}
	switch c := v.(type) {
	case *instructions.CopyCommand:
		return CopyFlags{From: c.From, Chown: c.Chown, Chmod: c.Chmod, Link: c.Link, Parents: c.Parents, Excludes: c.ExcludePatterns}, nil
	case *instructions.AddCommand:
		return CopyFlags{Chown: c.Chown, Chmod: c.Chmod, Link: c.Link, Excludes: c.ExcludePatterns, Checksum: c.Checksum, KeepGitDir: c.KeepGitDir != nil && *c.KeepGitDir}, nil
	}
	return CopyFlags{}, fmt.Errorf("%s: unexpected %T", in.Op, v)
}

// Healthcheck returns a HEALTHCHECK as the image config holds it, read by BuildKit's
// instructions package: {"NONE"}, {"CMD", argv...} or {"CMD-SHELL", command}, with its
// interval, timeout, start period and retries. It also returns --start-interval, which the
// config cannot hold: go-containerregistry's HealthConfig has no StartInterval (Docker 25's).
func (in Instruction) Healthcheck() (*v1.HealthConfig, time.Duration, error) {
	if in.Op != OpHealthcheck {
		return nil, 0, fmt.Errorf("%s is not HEALTHCHECK", in.Op)
	}
	v, err := in.parseFlags(strings.Join(in.Args, " "))
	if err != nil {
		return nil, 0, err
	}
	h := v.(*instructions.HealthCheckCommand).Health
	return &v1.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}, h.StartInterval, nil
}

// Mounts returns a RUN's --mount flags as BuildKit reads them, before their words are
// expanded: enough to know their types, sources and targets as written.
func (in Instruction) Mounts() ([]*instructions.Mount, error) {
	if in.Op != OpRun {
		return nil, nil
	}
	flags, err := in.RunFlags()
	if err != nil {
		return nil, err
	}
	return instructions.GetMounts(flags), nil
}
