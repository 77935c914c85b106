package strata

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/strata-build/strata/spec"
)

// proxyArgs are the build args Docker predefines: RUN steps see them without an ARG, and
// they are in no cache key and no history.
var proxyArgs = map[string]bool{
	"HTTP_PROXY": true, "http_proxy": true, "HTTPS_PROXY": true, "https_proxy": true,
	"FTP_PROXY": true, "ftp_proxy": true, "NO_PROXY": true, "no_proxy": true,
	"ALL_PROXY": true, "all_proxy": true,
}

// dockerfile converts a parsed Dockerfile into layers as docker build runs it: one layer per
// instruction, so that each is cached on its own, a stage per FROM, and only the stages the
// target needs.
type dockerfile struct {
	r         *resolver
	name      string // the Dockerfile's path, for messages and ARG scopes
	df        *spec.ParsedDockerfile
	ctxDir    string
	ignore    []string
	buildArgs map[string]string
	opts      LayerOptions
	force     bool
	global    map[string]string // the values of the ARGs before the first FROM

	done map[int][]*spec.Layer // a converted stage's layers, by index
}

// convert returns the layers of the target stage ("" is the last), keyed, and records the
// stages it reads from with the resolver, dependencies first.
func (d *dockerfile) convert(target string) ([]*spec.Layer, error) {
	var err error
	if d.global, err = globalArgs(d.df.Args, d.buildArgs, d.r.platform); err != nil {
		return nil, fmt.Errorf("%s: %w", d.name, err)
	}
	if d.df.Syntax != "" && !stableSyntax.MatchString(d.df.Syntax) {
		d.r.warnings = append(d.r.warnings, fmt.Sprintf("%s: the \"# syntax=%s\" directive names a frontend image, which strata does not run: strata builds the Dockerfile with its own frontend (BuildKit's parser, Dockerfile 1.x syntax)", d.name, d.df.Syntax))
	}
	t := len(d.df.Stages) - 1
	if target != "" {
		if t = d.stageIndex(target, len(d.df.Stages)); t < 0 {
			var names []string
			for _, st := range d.df.Stages {
				if st.Name != "" {
					names = append(names, st.Name)
				}
			}
			return nil, fmt.Errorf("%s: target %q is not a stage; its named stages are: %s", d.name, target, strings.Join(names, ", "))
		}
	}
	d.done = map[int][]*spec.Layer{}
	return d.stage(t, map[int]bool{})
}

// stageIndex finds a stage by name (case-insensitive) or index among the first n stages.
func (d *dockerfile) stageIndex(ref string, n int) int {
	for i := 0; i < n; i++ {
		if d.df.Stages[i].Name != "" && d.df.Stages[i].Name == strings.ToLower(ref) {
			return i
		}
	}
	if i, err := strconv.Atoi(ref); err == nil && i >= 0 && i < n {
		return i
	}
	return -1
}

// stage converts stage i after the stages it reads from, and returns its layers.
func (d *dockerfile) stage(i int, visiting map[int]bool) ([]*spec.Layer, error) {
	if layers, ok := d.done[i]; ok {
		return layers, nil
	}
	if visiting[i] {
		return nil, fmt.Errorf("%s: stage %d reads from itself through --from or FROM", d.name, i)
	}
	visiting[i] = true
	st := d.df.Stages[i]
	label := st.Name
	if label == "" {
		label = "stage-" + strconv.Itoa(i)
	}
	// FROM sees the global ARGs and the platform ARGs.
	scope := platformArgs(d.r.platform)
	for k, v := range d.global {
		scope[k] = v
	}
	from, err := expandWord(st.From, scope)
	if err != nil {
		return nil, fmt.Errorf("%s:%d: FROM %s: %w", d.name, st.Line, st.From, err)
	}
	if st.Platform != "" {
		p, err := expandWord(st.Platform, scope)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: FROM --platform=%s: %w", d.name, st.Line, st.Platform, err)
		}
		if p != d.r.platform && p+"/v8" != d.r.platform {
			return nil, fmt.Errorf("%s:%d: FROM --platform=%s: strata builds for this machine's platform, %s; multi-platform builds are not supported yet, so drop --platform or build on a %s machine", d.name, st.Line, p, d.r.platform, p)
		}
	}
	// A stage FROM an earlier stage goes on from its layers; others start from a base.
	var layers []*spec.Layer
	// The ONBUILD triggers the stage runs first: its base image's, or the ONBUILD lines of
	// the stage it is FROM; and the ARGs they declare.
	var triggers, triggerArgs []string
	scopeName := fmt.Sprintf("%s#%d", d.name, i)
	parent := ""
	j := d.stageIndex(from, i)
	fromStage := j >= 0 && d.df.Stages[j].Name != ""
	if fromStage {
		base, err := d.stage(j, visiting)
		if err != nil {
			return nil, err
		}
		for _, in := range d.df.Stages[j].Instructions {
			if in.Op == spec.OpOnbuild {
				triggers = append(triggers, in.Args[0])
			}
		}
		if len(triggers) > 0 {
			// They run in the stage's first layer: what they read is in its key.
			ti, err := d.triggerInputs(triggers, nil)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: FROM %s: %w", d.name, st.Line, from, err)
			}
			triggerArgs = ti.args
		}
		layers = append(layers, base...)
		parent = base[len(base)-1].Key
	} else {
		root := &spec.Layer{Method: "from_dockerfile", Title: fmt.Sprintf("[%s] FROM %s", label, from)}
		if from == "scratch" {
			root.Base = &spec.Base{Kind: spec.BaseScratch}
		} else {
			if _, err := checkRef(from); err != nil {
				return nil, fmt.Errorf("%s:%d: FROM: %w", d.name, st.Line, err)
			}
			root.Base = &spec.Base{Kind: spec.BaseRegistry, Ref: from}
			// The base image's ONBUILD triggers run right after FROM, in this layer.
			var env map[string]string
			if triggers, env, err = d.baseTriggers(root); err != nil {
				return nil, fmt.Errorf("%s:%d: FROM %s: %w", d.name, st.Line, from, err)
			}
			ti, err := d.triggerInputs(triggers, func(w string) (string, error) { return expandWord(w, env) })
			if err != nil {
				return nil, fmt.Errorf("%s:%d: FROM %s: %w", d.name, st.Line, from, err)
			}
			triggerArgs = ti.args
			root.Context, root.Remote = ti.files, ti.remote
			for _, ref := range ti.images {
				root.Images = append(root.Images, spec.ImageRef{Ref: ref})
			}
			root.BuildArgs = d.givenArgs(triggerArgs)
			root.Scope = scopeName
		}
		if err := d.r.finish(root, "from_dockerfile", "", d.force); err != nil {
			return nil, err
		}
		layers, parent = append(layers, root), root.Key
	}
	escape := ""
	if d.df.Escape != "\\" {
		escape = d.df.Escape
	}
	// The stage's ARG scope: a declared ARG's value, for resolving --from words, and the
	// build args the stage has declared so far, which are in its later layers' keys.
	args := map[string]string{}
	for k, v := range scope {
		args[k] = v
	}
	declared := map[string]string{}
	for _, kv := range d.givenArgs(triggerArgs) {
		declared[kv.Key] = kv.Value
	}
	expand := func(w string) (string, error) { return expandWord(w, args) }
	for n, in := range st.Instructions {
		if in.Op == spec.OpEnv {
			// The stage's own ENV values, for the sources and --from words after them.
			for _, kv := range in.Pairs {
				if v, err := expandWord(kv.Value, args); err == nil {
					args[kv.Key] = v
				}
			}
		}
		if in.Op == spec.OpHealthcheck {
			if _, si, err := in.Healthcheck(); err == nil && si != 0 {
				d.r.warnings = append(d.r.warnings, fmt.Sprintf("%s:%d: HEALTHCHECK --start-interval=%s is not kept: the image config strata writes (go-containerregistry's) has no StartInterval, so the container engine uses its default", d.name, in.Line, si))
			}
		}
		if in.Op == spec.OpArg {
			for _, kv := range in.Pairs {
				v, given := d.buildArgs[kv.Key]
				g, global := d.global[kv.Key]
				switch {
				case given:
					declared[kv.Key] = v
				case kv.NoValue && global:
					// A bare ARG takes the value declared before FROM: given to the step
					// as a build arg, it is in the key of the layers that see it.
					v, declared[kv.Key] = g, g
				case !kv.NoValue:
					if v, err = expandWord(kv.Value, args); err != nil {
						return nil, fmt.Errorf("%s:%d: ARG %s: %w", d.name, in.Line, kv.Key, err)
					}
				}
				args[kv.Key] = v
			}
		}
		l, err := d.r.layer(d.opts)
		if err != nil {
			return nil, err
		}
		l.Method = "from_dockerfile"
		l.Title = fmt.Sprintf("[%s %d/%d] %s", label, n+1, len(st.Instructions), summarizeInstruction(in))
		l.Scope = scopeName
		l.Escape = escape
		l.Instructions = []spec.Instruction{in}
		// Only the ARGs the stage declared reach its steps, so only those are in its keys.
		l.BuildArgs = spec.SortedKVs(declared)
		if in.Op == spec.OpRun {
			for k, v := range d.buildArgs {
				if _, isDeclared := declared[k]; proxyArgs[k] && !isDeclared {
					l.ProxyEnv = append(l.ProxyEnv, spec.KV{Key: k, Value: v})
				}
			}
			sort.Slice(l.ProxyEnv, func(a, b int) bool { return l.ProxyEnv[a].Key < l.ProxyEnv[b].Key })
		}
		// The triggers of the stage this one is FROM run first, in its first layer.
		var ti triggerInput
		if n == 0 && fromStage && len(triggers) > 0 {
			if ti, err = d.triggerInputs(triggers, expand); err != nil {
				return nil, fmt.Errorf("%s:%d: FROM %s: %w", d.name, st.Line, from, err)
			}
		}
		// References to other stages are keyed by their last layers' keys; the images the
		// triggers name are resolved with the layer's own.
		refs, err := imageRefs(l.Instructions)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", d.name, in.Line, err)
		}
		for _, ref := range ti.images {
			if word, err := expandWord(ref, args); err == nil && d.stageIndex(word, len(d.df.Stages)) < 0 {
				l.Images = append(l.Images, spec.ImageRef{Ref: ref})
			} else {
				refs = append(refs, ref)
			}
		}
		for _, ref := range refs {
			word, err := expandWord(ref, args)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: --from=%s: %w", d.name, in.Line, ref, err)
			}
			j := d.stageIndex(word, len(d.df.Stages))
			if j < 0 || j == i {
				continue // an image
			}
			src, err := d.stage(j, visiting)
			if err != nil {
				return nil, err
			}
			l.Images = append(l.Images, spec.ImageRef{Ref: ref, Stage: stageName(j), Digest: src[len(src)-1].Key})
		}
		if l.Context, err = d.context(in, expand); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", d.name, in.Line, err)
		}
		l.Context = mergeContext(l.Context, ti.files)
		if l.Remote, err = remoteSources(l.Instructions, expand); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", d.name, in.Line, err)
		}
		l.Remote = append(l.Remote, ti.remote...)
		if err := d.r.finish(l, "from_dockerfile", parent, d.force); err != nil {
			return nil, err
		}
		layers, parent = append(layers, l), l.Key
	}
	delete(visiting, i)
	d.done[i] = layers
	return layers, nil
}

// stageName is how a plan names stage i of a Dockerfile: its index, which --from may use
// too, and which names cannot clash with.
func stageName(i int) string { return strconv.Itoa(i) }

// record adds the stages the target reads from to the plan, each under its index.
func (d *dockerfile) record(target []*spec.Layer) {
	used := map[string]bool{}
	var visit func(layers []*spec.Layer)
	visit = func(layers []*spec.Layer) {
		for _, l := range layers {
			for _, im := range l.Images {
				if im.Stage == "" || used[im.Stage] {
					continue
				}
				i, _ := strconv.Atoi(im.Stage)
				visit(d.done[i]) // its own dependencies first
				if !used[im.Stage] {
					used[im.Stage] = true
					d.r.stages = append(d.r.stages, spec.Stage{Name: im.Stage, Layers: d.done[i]})
				}
			}
		}
	}
	visit(target)
}

// context lists the local files an instruction reads: COPY and ADD sources that are not
// URLs, and the sources of RUN --mount=type=bind without from=. Their words are expanded
// with the stage's ARG and ENV values.
func (d *dockerfile) context(in spec.Instruction, expand func(string) (string, error)) ([]spec.ContextFile, error) {
	switch in.Op {
	case spec.OpCopy, spec.OpAdd:
		words := append([]string(nil), in.Args...)
		for i, w := range words[:len(words)-1] {
			if spec.IsHeredocSource(in, w) {
				continue
			}
			var err error
			if words[i], err = expand(w); err != nil {
				return nil, err
			}
		}
		in.Args = words
		return d.r.copyContext([]spec.Instruction{in}, d.ctxDir, d.ignore)
	case spec.OpRun:
		mounts, err := in.Mounts()
		if err != nil {
			return nil, err
		}
		var srcs []string
		for _, m := range mounts {
			if m.Type == "bind" && m.From == "" {
				src := m.Source
				if src == "" {
					src = "."
				}
				srcs = append(srcs, src)
			}
		}
		if len(srcs) == 0 {
			return nil, nil
		}
		return d.r.copyContext([]spec.Instruction{{Op: spec.OpCopy, Args: append(srcs, "/")}}, d.ctxDir, d.ignore)
	}
	return nil, nil
}

// baseTriggers returns the ONBUILD triggers of a root layer's base image, and the
// environment they expand against.
func (d *dockerfile) baseTriggers(root *spec.Layer) ([]string, map[string]string, error) {
	if d.r.o.configs == nil {
		return nil, nil, nil
	}
	if err := resolveImages(d.r.ctx, root, d.r.o); err != nil {
		return nil, nil, &resolutionError{err}
	}
	if root.Base.Digest == "" {
		return nil, nil, nil
	}
	triggers, env, err := d.r.o.configs(d.r.ctx, root.Base.Ref, root.Base.Digest, root.Base.Auth)
	if err != nil {
		return nil, nil, &resolutionError{err}
	}
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	return triggers, vars, nil
}

// triggerInput is what ONBUILD triggers read that the key of the layer running them must
// hold: the context files their COPY and ADD read, the names of the ARGs they declare (whose
// build args are in the key, as a stage's own ARGs' are), the URLs and git repositories they
// ADD, and the images (or stages) their --from and from= name.
type triggerInput struct {
	files  []spec.ContextFile
	args   []string
	remote []spec.RemoteRef
	images []string
}

// triggerInputs lists what ONBUILD triggers read before the build; context files only when
// expand is given.
func (d *dockerfile) triggerInputs(triggers []string, expand func(string) (string, error)) (triggerInput, error) {
	var ti triggerInput
	ins, err := spec.ParseTriggers(triggers)
	if err != nil {
		return ti, err
	}
	for _, in := range ins {
		if in.Op == spec.OpArg {
			for _, kv := range in.Pairs {
				ti.args = append(ti.args, kv.Key)
			}
		}
		if expand == nil {
			continue
		}
		f, err := d.context(in, expand)
		if err != nil {
			return ti, fmt.Errorf("ONBUILD %s: %w", in.Op, err)
		}
		ti.files = mergeContext(ti.files, f)
	}
	if expand != nil {
		if ti.remote, err = remoteSources(ins, expand); err != nil {
			return ti, fmt.Errorf("ONBUILD: %w", err)
		}
	}
	if ti.images, err = imageRefs(ins); err != nil {
		return ti, fmt.Errorf("ONBUILD: %w", err)
	}
	return ti, nil
}

// givenArgs are the build args given for the ARGs named.
func (d *dockerfile) givenArgs(names []string) []spec.KV {
	m := map[string]string{}
	for _, k := range names {
		if v, ok := d.buildArgs[k]; ok {
			m[k] = v
		}
	}
	return spec.SortedKVs(m)
}

// mergeContext adds the files of b that a does not have.
func mergeContext(a, b []spec.ContextFile) []spec.ContextFile {
	have := make(map[string]bool, len(a))
	for _, f := range a {
		have[f.Path] = true
	}
	for _, f := range b {
		if !have[f.Path] {
			a, have[f.Path] = append(a, f), true
		}
	}
	sort.Slice(a, func(i, j int) bool { return a[i].Path < a[j].Path })
	return a
}

// summarizeInstruction is an instruction's first line, shortened for progress displays.
func summarizeInstruction(in spec.Instruction) string {
	s, _, _ := strings.Cut(in.String(), "\n")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// stableSyntax matches the syntax directives that name BuildKit's stable Dockerfile 1.x
// frontend, whose syntax strata's own frontend reads: they need no warning.
var stableSyntax = regexp.MustCompile(`^(docker\.io/)?docker/dockerfile:1(\.[0-9]+){0,2}(@sha256:[0-9a-f]{64})?$`)
