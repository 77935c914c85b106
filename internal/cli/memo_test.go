package cli

import (
	"bytes"
	"testing"
	"time"

	"github.com/strata-build/strata"
	"github.com/strata-build/strata/internal/fasthit"
	"github.com/strata-build/strata/spec"
)

// TestFastHitPrintsAsTheBuild: what the cache-hit path prints for a memo is what the full
// build's progress prints for the same cached layers, in both modes it answers in.
func TestFastHitPrintsAsTheBuild(t *testing.T) {
	m := &fasthit.Memo{Name: "app", Manifest: "sha256:ff", Layers: []fasthit.Layer{
		{Method: "debian_slim", Key: "sha256:0123456789abcdef0000", Size: 5},
		{Method: "dockerfile_commands", Title: "RUN make", Key: "sha256:fedcba9876543210ffff"},
	}}
	now := time.Date(2026, 11, 29, 1, 2, 3, 4, time.UTC)
	for _, mode := range []string{"plain", "json"} {
		var want, got, out bytes.Buffer
		p := newProgress(&want, mode, nil)
		for i, l := range m.Layers {
			p.event(strata.Event{Time: now, Index: i, Total: len(m.Layers), Method: l.Method, Title: l.Title, Key: l.Key, Status: strata.StatusCached, Size: l.Size})
		}
		fasthit.Print(m, mode, now, &out, &got)
		if got.String() != want.String() {
			t.Errorf("%s: the cache-hit path prints\n%s\nthe build\n%s", mode, got.String(), want.String())
		}
	}
}

func TestMemoizable(t *testing.T) {
	plain := func() *strata.Plan {
		return &strata.Plan{Layers: []*spec.Layer{
			{Method: "debian_slim", Base: &spec.Base{Kind: spec.BaseDebian}},
			{Method: "run_commands"},
		}}
	}
	if !memoizable(plain()) {
		t.Fatal("a plan of a Debian base and commands is not memoizable")
	}
	for name, change := range map[string]func(p *strata.Plan){
		"local files":   func(p *strata.Plan) { p.Layers[1].Context = []spec.ContextFile{{}} },
		"registry base": func(p *strata.Plan) { p.Layers[0].Base.Kind = spec.BaseRegistry },
		"image read":    func(p *strata.Plan) { p.Layers[1].Images = []spec.ImageRef{{Ref: "x"}} },
		"remote source": func(p *strata.Plan) { p.Layers[1].Remote = []spec.RemoteRef{{}} },
		"function":      func(p *strata.Plan) { p.Layers[1].Function = &spec.FunctionRef{} },
		"secret":        func(p *strata.Plan) { p.Layers[1].Secrets = []string{"s"} },
		"volume":        func(p *strata.Plan) { p.Layers[1].Volumes = []spec.VolumeMount{{}} },
		"forced layer":  func(p *strata.Plan) { p.Layers[1].ForceBuild = true },
		"runtime mount": func(p *strata.Plan) { p.Mounts = []spec.Mount{{}} },
		"another stage": func(p *strata.Plan) { p.Stages = []spec.Stage{{}} },
		// Methods whose resolve reads files that show nowhere in the plan.
		"from_dockerfile":            func(p *strata.Plan) { p.Layers[0].Method = "from_dockerfile" },
		"pip_install_from_pyproject": func(p *strata.Plan) { p.Layers[1].Method = "pip_install_from_pyproject" },
	} {
		p := plain()
		change(p)
		if memoizable(p) {
			t.Errorf("a plan with a %s is memoizable", name)
		}
	}
}
