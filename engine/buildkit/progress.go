package buildkit

import (
	"bytes"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	digest "github.com/opencontainers/go-digest"

	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/spec"
)

// progress maps BuildKit's solve status to strata's events, layer by layer: a layer is
// building when its first vertex starts, and cached at the end if every one of its vertices
// was. Step output is passed on line by line with every secret value masked.
type progress struct {
	b        *build
	mu       sync.Mutex
	layers   map[digest.Digest]*spec.Layer
	state    map[string]*layerProgress // by key
	partial  map[digest.Digest][]byte
	failed   *spec.Layer
	failedAt string
}

type layerProgress struct {
	l        *spec.Layer
	started  time.Time
	finished time.Time
	vertices map[digest.Digest]bool // cached (ever reported so)
	log      []string
	building bool
}

func newProgress(b *build) *progress {
	return &progress{b: b, layers: map[digest.Digest]*spec.Layer{}, state: map[string]*layerProgress{}, partial: map[digest.Digest][]byte{}}
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

func (p *progress) run(ch chan *client.SolveStatus) error {
	for st := range ch {
		p.mu.Lock()
		for _, v := range st.Vertexes {
			l := p.layerOf(v)
			if l == nil {
				continue
			}
			lp := p.state[l.Key]
			if lp == nil {
				lp = &layerProgress{l: l, vertices: map[digest.Digest]bool{}}
				p.state[l.Key] = lp
			}
			// A vertex that BuildKit loaded from a cache is reported cached, and may be
			// reported again, not cached, while its layer is fetched for the export: it
			// was not executed.
			lp.vertices[v.Digest] = lp.vertices[v.Digest] || v.Cached
			if v.Started != nil && (lp.started.IsZero() || v.Started.Before(lp.started)) {
				lp.started = *v.Started
			}
			if v.Completed != nil && v.Completed.After(lp.finished) {
				lp.finished = *v.Completed
			}
			if v.Started != nil && !lp.vertices[v.Digest] && !lp.building {
				lp.building = true
				p.b.emit(p.event(l, engine.StatusBuilding))
			}
			if v.Error != "" && p.failed == nil && !strings.Contains(v.Error, "context canceled") {
				p.failed, p.failedAt = l, strings.TrimPrefix(v.Name, "[strata ")
			}
		}
		for _, lg := range st.Logs {
			l := p.layers[lg.Vertex]
			if l == nil {
				continue
			}
			data := append(p.partial[lg.Vertex], lg.Data...)
			for {
				i := bytes.IndexByte(data, '\n')
				if i < 0 {
					break
				}
				p.line(l, string(data[:i]))
				data = data[i+1:]
			}
			p.partial[lg.Vertex] = data
		}
		p.mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for d, rest := range p.partial {
		if len(rest) > 0 {
			p.line(p.layers[d], string(rest))
		}
	}
	var done []*layerProgress
	for _, lp := range p.state {
		done = append(done, lp)
	}
	sort.Slice(done, func(i, j int) bool { return p.b.index[done[i].l.Key] < p.b.index[done[j].l.Key] })
	for _, lp := range done {
		if lp.l == p.failed {
			continue
		}
		cached := true
		for _, c := range lp.vertices {
			cached = cached && c
		}
		ev := p.event(lp.l, engine.StatusDone)
		if cached {
			ev.Status = engine.StatusCached
		} else if !lp.started.IsZero() && lp.finished.After(lp.started) {
			ev.Seconds = lp.finished.Sub(lp.started).Seconds()
		}
		p.b.emit(ev)
	}
	return nil
}

// line passes on one line of a step's output, masked.
func (p *progress) line(l *spec.Layer, s string) {
	s = p.redact(s)
	lp := p.state[l.Key]
	if lp != nil {
		lp.log = append(lp.log, s)
		if len(lp.log) > 10 {
			lp.log = lp.log[len(lp.log)-10:]
		}
	}
	ev := p.event(l, engine.StatusLog)
	ev.Line = s
	p.b.emit(ev)
}

func (p *progress) redact(s string) string {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	for _, v := range p.b.secrets {
		if len(v) > 0 {
			s = strings.ReplaceAll(s, string(v), "****")
		}
	}
	return s
}

// buildError describes a failed solve as the local engine does: the layer, the command,
// its exit code and the last lines of its output. Secret values are masked in it too.
func (p *progress) buildError(err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	be := &engine.BuildError{Err: errors.New(p.redact(err.Error()))}
	var ee *gwpb.ExitError
	if errors.As(err, &ee) {
		be.ExitCode = int(ee.ExitCode)
	}
	if l := p.failed; l != nil {
		be.Index, be.Method, be.Key = p.b.index[l.Key], l.Method, l.Key
		_, be.Command, _ = strings.Cut(p.failedAt, ": ")
		if lp := p.state[l.Key]; lp != nil {
			be.Tail = lp.log
		}
	}
	return be
}
