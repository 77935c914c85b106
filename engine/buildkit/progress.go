package buildkit

import (
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	digest "github.com/opencontainers/go-digest"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/secrets"
	"github.com/strata-build/strata/spec"
)

// progress maps BuildKit's solve status to strata's events, layer by layer. Every vertex
// of a layer is named "[strata N] ..." (vertexName); the base's and the context's are not,
// as the local engine reports the base and a context source is never cached.
//   - A layer is building when one of its vertices starts without having been reported
//     cached (a vertex loaded from a registry cache is reported again, uncached, while its
//     layer is fetched: it was not executed).
//   - It is done, or cached if each of its vertices was, when all of them have completed.
//   - A failed vertex fails its layer.
//   - Step output is passed on line by line, through the same redactor as the local
//     engine's, so a secret value is masked even across lines and writes.
type progress struct {
	b      *build
	values []string
	mu     sync.Mutex
	layers map[digest.Digest]*spec.Layer
	state  map[string]*layerProgress // by key
	logs   map[digest.Digest]*secrets.Redactor
	failed *layerProgress
}

type layerProgress struct {
	l        *spec.Layer
	vertices map[digest.Digest]*vertexProgress
	started  time.Time
	finished time.Time
	log      []string
	building bool
	reported bool
	failedAt string
}

type vertexProgress struct {
	cached    bool // ever reported so
	completed bool
}

func newProgress(b *build) *progress {
	var values []string
	for _, v := range b.secrets {
		values = append(values, string(v))
	}
	return &progress{b: b, values: values, layers: map[digest.Digest]*spec.Layer{}, state: map[string]*layerProgress{}, logs: map[digest.Digest]*secrets.Redactor{}}
}

func (p *progress) layerOf(v *client.Vertex) *spec.Layer {
	if l, ok := p.layers[v.Digest]; ok {
		return l
	}
	if !strings.HasPrefix(v.Name, "[strata ") {
		return nil
	}
	prefix, _, _ := strings.Cut(v.Name, "]")
	p.b.mu.Lock()
	l := p.b.names[prefix+"]"]
	p.b.mu.Unlock()
	if l != nil {
		p.layers[v.Digest] = l
	}
	return l
}

func (p *progress) event(l *spec.Layer, s engine.Status) engine.Event {
	return engine.Event{Time: time.Now(), Index: p.b.index[l.Key], Total: len(p.b.index), Method: l.Method, Title: l.Title, Key: l.Key, Status: s}
}

// run reads the status channel until the solve closes it.
func (p *progress) run(ch chan *client.SolveStatus) error {
	for st := range ch {
		p.mu.Lock()
		for _, v := range st.Vertexes {
			p.vertex(v)
		}
		for _, lg := range st.Logs {
			l := p.layers[lg.Vertex]
			if l == nil {
				continue
			}
			r := p.logs[lg.Vertex]
			if r == nil {
				r = secrets.NewRedactor(secrets.LineWriter(func(line string) { p.line(l, line) }), p.values)
				p.logs[lg.Vertex] = r
			}
			r.Write(lg.Data)
		}
		p.mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.logs {
		r.Flush()
	}
	return nil
}

func (p *progress) vertex(v *client.Vertex) {
	l := p.layerOf(v)
	if l == nil {
		return
	}
	lp := p.state[l.Key]
	if lp == nil {
		lp = &layerProgress{l: l, vertices: map[digest.Digest]*vertexProgress{}}
		p.state[l.Key] = lp
	}
	vp := lp.vertices[v.Digest]
	if vp == nil {
		vp = &vertexProgress{}
		lp.vertices[v.Digest] = vp
	}
	vp.cached = vp.cached || v.Cached
	if v.Started != nil && (lp.started.IsZero() || v.Started.Before(lp.started)) {
		lp.started = *v.Started
	}
	if v.Completed != nil && v.Completed.After(lp.finished) {
		lp.finished = *v.Completed
	}
	if v.Started != nil && !vp.cached && !lp.building {
		lp.building = true
		p.b.emit(p.event(l, engine.StatusBuilding))
	}
	if v.Error != "" {
		if p.failed == nil && !strings.Contains(v.Error, "context canceled") {
			p.failed, lp.failedAt, lp.reported = lp, v.Name, true
			ev := p.event(l, engine.StatusFailed)
			ev.Seconds = p.seconds(lp)
			p.b.emit(ev)
		}
		return
	}
	vp.completed = vp.completed || v.Completed != nil
	for _, o := range lp.vertices {
		if !o.completed {
			return
		}
	}
	p.report(lp)
}

func (p *progress) seconds(lp *layerProgress) float64 {
	if lp.started.IsZero() || !lp.finished.After(lp.started) {
		return 0
	}
	return lp.finished.Sub(lp.started).Seconds()
}

// report says once that a layer is done, or cached if each of its vertices was.
func (p *progress) report(lp *layerProgress) {
	if lp.reported {
		return
	}
	lp.reported = true
	cached := true
	for _, v := range lp.vertices {
		cached = cached && v.cached
	}
	ev := p.event(lp.l, engine.StatusDone)
	if cached {
		ev.Status = engine.StatusCached
	} else {
		ev.Seconds = p.seconds(lp)
	}
	p.b.emit(ev)
}

// finish reports, after a solve that succeeded, the layers not reported yet: those whose
// vertices BuildKit did not need (a later one was cached), and those that only change the
// config and have no vertex, as cached when every layer with vertices was.
func (p *progress) finish(layers []*spec.Layer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var rest []*layerProgress
	allCached := true
	for _, lp := range p.state {
		if !lp.reported {
			rest = append(rest, lp)
		}
		for _, v := range lp.vertices {
			allCached = allCached && v.cached
		}
	}
	sort.Slice(rest, func(i, j int) bool { return p.b.index[rest[i].l.Key] < p.b.index[rest[j].l.Key] })
	for _, lp := range rest {
		p.report(lp)
	}
	for _, l := range layers {
		if _, ok := p.state[l.Key]; ok || l.Base != nil {
			continue
		}
		p.state[l.Key] = &layerProgress{l: l, reported: true}
		ev := p.event(l, engine.StatusDone)
		if allCached {
			ev.Status = engine.StatusCached
		}
		p.b.emit(ev)
	}
}

// line passes on one masked line of a step's output.
func (p *progress) line(l *spec.Layer, s string) {
	if lp := p.state[l.Key]; lp != nil {
		lp.log = append(lp.log, s)
		if len(lp.log) > 10 {
			lp.log = lp.log[len(lp.log)-10:]
		}
	}
	ev := p.event(l, engine.StatusLog)
	ev.Line = s
	p.b.emit(ev)
}

// solveError is a solve's error with every secret value masked in its message; Unwrap
// keeps the cause for errors.Is and errors.As.
type solveError struct {
	msg string
	err error
}

func (e *solveError) Error() string { return e.msg }
func (e *solveError) Unwrap() error { return e.err }

// buildError describes a failed solve. When a step failed it is a BuildError, as the local
// engine's: the layer, the command, its exit code and the last lines of its output. Other
// failures (the export, the registry cache, a lost daemon, Ctrl-C) are returned as they are,
// masked.
func (p *progress) buildError(err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.logs {
		r.Flush()
	}
	var msg strings.Builder
	r := secrets.NewRedactor(&msg, p.values)
	r.Write([]byte(err.Error()))
	r.Flush()
	serr := &solveError{msg: msg.String(), err: err}
	lp := p.failed
	if lp == nil {
		return serr
	}
	be := &engine.BuildError{Index: p.b.index[lp.l.Key], Method: lp.l.Method, Key: lp.l.Key, Tail: lp.log, Err: serr}
	var ee *gwpb.ExitError
	if errors.As(err, &ee) {
		be.ExitCode = int(ee.ExitCode)
	}
	_, be.Command, _ = strings.Cut(lp.failedAt, ": ")
	return be
}
