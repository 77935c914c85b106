package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/strata-build/strata/internal/shell"
)

// String renders the instruction as a Dockerfile line.
func (in Instruction) String() string {
	var b strings.Builder
	b.WriteString(string(in.Op))
	for _, f := range in.Flags {
		b.WriteString(" " + f)
	}
	switch {
	case len(in.Pairs) > 0:
		for _, kv := range in.Pairs {
			if kv.NoValue {
				b.WriteString(" " + kv.Key)
			} else {
				b.WriteString(" " + kv.Key + "=" + kv.Value)
			}
		}
	case in.JSON:
		b.WriteString(" " + jsonArray(in.Args))
	case len(in.Args) > 0:
		b.WriteString(" " + strings.Join(in.Args, " "))
	}
	for _, h := range in.Heredocs {
		b.WriteString("\n" + h.Content + h.Name)
	}
	return b.String()
}

// jsonArray encodes args as a JSON array without HTML escaping, as Dockerfiles expect.
func jsonArray(args []string) string {
	if args == nil {
		args = []string{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(args)
	return strings.TrimSpace(strings.ReplaceAll(buf.String(), `","`, `", "`))
}

// Dockerfile renders a chain of layers as one Dockerfile that builds the same image with
// docker or buildah. What a Dockerfile cannot say (secrets as environment, GPUs, volumes,
// runtime mounts) is written as comments.
func Dockerfile(layers []*Layer, mounts []Mount) string {
	var b strings.Builder
	for i, l := range layers {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "# layer %d: %s", i, l.Method)
		if l.Key != "" {
			fmt.Fprintf(&b, " (%s)", l.Key)
		}
		b.WriteString("\n")
		if l.Base != nil {
			writeBase(&b, l.Base)
		}
		if n := len(l.Context); n > 0 {
			fmt.Fprintf(&b, "# build context of this layer: %d local file(s) at their context paths, such as %s\n", n, l.Context[n-1].Path)
		}
		for _, a := range l.Artifacts {
			fmt.Fprintf(&b, "# context %s: %s %s, provided by strata\n", a.Path, a.Name, a.Version)
		}
		if len(l.Secrets) > 0 {
			fmt.Fprintf(&b, "# secrets %s: their keys are set as environment of this layer's RUN steps\n", strings.Join(l.Secrets, ", "))
		}
		if l.GPU != nil {
			fmt.Fprintf(&b, "# gpu: %s:%d\n", l.GPU.Type, l.GPU.Count)
		}
		for _, v := range l.Volumes {
			fmt.Fprintf(&b, "# volume %s mounted at %s during this layer's RUN steps\n", v.Name, v.Path)
		}
		for _, kv := range l.BuildArgs {
			fmt.Fprintf(&b, "ARG %s=%s\n", kv.Key, shell.Quote(kv.Value))
		}
		for _, kv := range l.Env {
			// ARG is build-time only, like a layer's env; a Dockerfile keeps it for the rest of
			// the stage, strata only for this layer.
			fmt.Fprintf(&b, "ARG %s=%s\n", kv.Key, shell.Quote(kv.Value))
		}
		for _, in := range l.Instructions {
			b.WriteString(in.String() + "\n")
		}
	}
	for _, m := range mounts {
		fmt.Fprintf(&b, "\n# %s: %d local file(s) mounted at %s when a container starts (not in the image)\n", m.Method, len(m.Files), m.Target)
	}
	return b.String()
}

func writeBase(b *strings.Builder, base *Base) {
	switch base.Kind {
	case BaseScratch:
		b.WriteString("FROM scratch\n")
	case BaseRegistry:
		if base.Auth != nil {
			fmt.Fprintf(b, "# pulled with %s credentials from secret %s\n", base.Auth.Type, base.Auth.Secret)
		}
		fmt.Fprintf(b, "FROM %s\n", base.Ref)
	case BaseDebian:
		fmt.Fprintf(b, "# strata bootstraps this base from Debian %s packages; this is the equivalent from the public image\n", base.Suite)
		fmt.Fprintf(b, "FROM %s\n", base.Ref)
		fmt.Fprintf(b, "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends %s && rm -rf /var/lib/apt/lists/*\n", shell.Join(base.Packages))
	}
}
