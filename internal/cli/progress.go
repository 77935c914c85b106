package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/strata-build/strata/engine"
)

// progress renders build events: a live per-layer display on a terminal, plain lines
// otherwise, or JSON lines for machines.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	mode    string // "tty", "plain", "json"
	layers  []engine.Event
	start   map[int]time.Time
	last    map[int]string
	drawn   int
	stop    chan struct{}
	stopped chan struct{}
}

func newProgress(w io.Writer, mode string) *progress {
	p := &progress{w: w, mode: mode, start: map[int]time.Time{}, last: map[int]string{}}
	if mode == "tty" {
		p.stop, p.stopped = make(chan struct{}), make(chan struct{})
		go p.tick()
	}
	return p
}

func (p *progress) event(ev engine.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.mode {
	case "json":
		b, _ := json.Marshal(ev)
		fmt.Fprintln(p.w, string(b))
		return
	case "plain":
		switch ev.Status {
		case engine.StatusLog:
			fmt.Fprintf(p.w, "#%d %s\n", ev.Index, ev.Line)
		case engine.StatusBuilding:
			fmt.Fprintf(p.w, "#%d %s building %s\n", ev.Index, ev.Method, short(ev.Key))
		case engine.StatusCached:
			fmt.Fprintf(p.w, "#%d %s cached %s\n", ev.Index, ev.Method, short(ev.Key))
		case engine.StatusDone:
			fmt.Fprintf(p.w, "#%d %s done in %.1fs, %s\n", ev.Index, ev.Method, ev.Seconds, human(ev.Size))
		case engine.StatusFailed:
			fmt.Fprintf(p.w, "#%d %s failed after %.1fs\n", ev.Index, ev.Method, ev.Seconds)
		}
		return
	}
	for len(p.layers) < ev.Total {
		p.layers = append(p.layers, engine.Event{Index: len(p.layers)})
	}
	if ev.Status == engine.StatusLog {
		p.last[ev.Index] = ev.Line
	} else {
		p.layers[ev.Index] = ev
		if ev.Status == engine.StatusBuilding {
			p.start[ev.Index] = ev.Time
		}
	}
	p.draw()
}

func (p *progress) tick() {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	defer close(p.stopped)
	for {
		select {
		case <-t.C:
			p.mu.Lock()
			p.draw()
			p.mu.Unlock()
		case <-p.stop:
			return
		}
	}
}

// draw redraws the layer table in place.
func (p *progress) draw() {
	if p.drawn > 0 {
		fmt.Fprintf(p.w, "\x1b[%dA", p.drawn)
	}
	for i, ev := range p.layers {
		var state string
		switch ev.Status {
		case engine.StatusCached:
			state = "cached " + human(ev.Size)
		case engine.StatusBuilding:
			state = fmt.Sprintf("building %.1fs", time.Since(p.start[i]).Seconds())
			if l := p.last[i]; l != "" {
				state += "  " + clip(l, 60)
			}
		case engine.StatusDone:
			state = fmt.Sprintf("done %.1fs %s", ev.Seconds, human(ev.Size))
		case engine.StatusFailed:
			state = fmt.Sprintf("FAILED after %.1fs", ev.Seconds)
		default:
			state = "waiting"
		}
		fmt.Fprintf(p.w, "\x1b[2K#%-2d %-28s %s\n", i, ev.Method, state)
	}
	p.drawn = len(p.layers)
}

func (p *progress) close() {
	if p.stop != nil {
		close(p.stop)
		<-p.stopped
		p.mu.Lock()
		p.draw()
		p.mu.Unlock()
	}
}

func short(key string) string {
	k := strings.TrimPrefix(key, "sha256:")
	if len(k) > 12 {
		k = k[:12]
	}
	return k
}

func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\r", "")
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
