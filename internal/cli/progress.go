package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/text/width"

	"github.com/strata-build/strata"
	"github.com/strata-build/strata/engine"
	"github.com/strata-build/strata/internal/fasthit"
)

// progress renders build events: on a terminal, a live display in the look of docker
// buildx's (one line per layer, the running layers' last log lines under them, fitted to the
// terminal's height and width); otherwise plain lines, or JSON lines for machines.
type progress struct {
	mu   sync.Mutex
	w    io.Writer
	mode string // "tty", "plain", "json"

	// The tty display.
	size    func() (cols, rows int)
	start   time.Time
	layers  []*layerRow
	drawn   int
	stop    chan struct{}
	stopped chan struct{}
}

// layerRow is a layer as the tty display shows it.
type layerRow struct {
	name    string
	status  strata.Status
	started time.Time
	seconds float64
	logs    []string
}

// logLines is how many of a running layer's last log lines the display shows, as buildx.
const logLines = 6

func newProgress(w io.Writer, mode string, size func() (cols, rows int)) *progress {
	p := &progress{w: w, mode: mode, size: size, start: time.Now()}
	if mode == "tty" {
		p.stop, p.stopped = make(chan struct{}), make(chan struct{})
		go p.tick()
	}
	return p
}

func (p *progress) event(ev strata.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.mode {
	case "json":
		b, _ := json.Marshal(ev)
		fmt.Fprintln(p.w, string(b))
	case "plain":
		if ev.Title != "" {
			ev.Method = ev.Title
		}
		switch ev.Status {
		case strata.StatusLog:
			fmt.Fprintf(p.w, "#%d %s\n", ev.Index, ev.Line)
		case strata.StatusBuilding:
			fmt.Fprintf(p.w, "#%d %s building %s\n", ev.Index, ev.Method, short(ev.Key))
		case strata.StatusCached:
			fmt.Fprintf(p.w, "#%d %s cached %s\n", ev.Index, ev.Method, short(ev.Key))
		case strata.StatusFetched:
			fmt.Fprintf(p.w, "#%d %s fetched from the registry cache %s, %s\n", ev.Index, ev.Method, short(ev.Key), human(ev.Size))
		case strata.StatusDone:
			fmt.Fprintf(p.w, "#%d %s done in %.1fs, %s\n", ev.Index, ev.Method, ev.Seconds, human(ev.Size))
		case strata.StatusFailed:
			fmt.Fprintf(p.w, "#%d %s failed after %.1fs\n", ev.Index, ev.Method, ev.Seconds)
		}
	case "tty":
		for len(p.layers) < ev.Total {
			p.layers = append(p.layers, nil)
		}
		r := p.layers[ev.Index]
		if r == nil {
			name := fmt.Sprintf("[%d/%d] %s", ev.Index+1, ev.Total, ev.Method)
			if ev.Title != "" {
				name = ev.Title
			}
			r = &layerRow{name: name, started: ev.Time}
			p.layers[ev.Index] = r
		}
		if ev.Status == strata.StatusLog {
			r.logs = append(r.logs, ev.Line)
			if len(r.logs) > logLines {
				r.logs = r.logs[len(r.logs)-logLines:]
			}
		} else {
			r.status, r.seconds = ev.Status, ev.Seconds
		}
		p.draw(false)
	}
}

func (p *progress) tick() {
	t := time.NewTicker(150 * time.Millisecond)
	defer t.Stop()
	defer close(p.stopped)
	for {
		select {
		case <-t.C:
			p.mu.Lock()
			p.draw(false)
			p.mu.Unlock()
		case <-p.stop:
			return
		}
	}
}

// frame is the display's text, one entry per line, at most rows lines of at most cols
// columns. When it does not fit, the layers shown are the running ones and those last done.
func (p *progress) frame(cols, rows int, final bool) []string {
	done := 0
	for _, r := range p.layers {
		if r != nil && r.status != strata.StatusBuilding {
			done++
		}
	}
	head := fmt.Sprintf("[+] Building %.1fs (%d/%d)", time.Since(p.start).Seconds(), done, len(p.layers))
	if final {
		head += " FINISHED"
	}
	var body []string
	for _, r := range p.layers {
		if r == nil {
			continue
		}
		var prefix, right string
		switch r.status {
		case strata.StatusCached:
			prefix, right = "CACHED ", "0.0s"
		case strata.StatusFetched:
			prefix, right = "CACHED (registry) ", "0.0s"
		case strata.StatusBuilding:
			right = fmt.Sprintf("%.1fs", time.Since(r.started).Seconds())
		case strata.StatusFailed:
			prefix, right = "ERROR ", fmt.Sprintf("%.1fs", r.seconds)
		default:
			right = fmt.Sprintf("%.1fs", r.seconds)
		}
		body = append(body, align(" => "+prefix+r.name, right, cols))
		if r.status == strata.StatusBuilding || (r.status == strata.StatusFailed && final) {
			for _, l := range r.logs {
				body = append(body, clip(" => => # "+l, cols))
			}
		}
	}
	if rows > 1 && len(body) > rows-1 {
		body = body[len(body)-(rows-1):]
	}
	return append([]string{clip(head, cols)}, body...)
}

// draw redraws the display in place, over the lines drawn last time.
func (p *progress) draw(final bool) {
	cols, rows := 80, 25
	if p.size != nil {
		if c, r := p.size(); c > 0 && r > 0 {
			cols, rows = c, r
		}
	}
	lines := p.frame(cols, rows, final)
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	for _, l := range lines {
		b.WriteString("\x1b[2K" + l + "\n")
	}
	// Clear what the last frame had below this one.
	for i := len(lines); i < p.drawn; i++ {
		b.WriteString("\x1b[2K\n")
	}
	if extra := p.drawn - len(lines); extra > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", extra)
	}
	p.drawn = len(lines)
	io.WriteString(p.w, b.String())
}

func (p *progress) close() {
	if p.stop != nil {
		close(p.stop)
		<-p.stopped
		p.mu.Lock()
		p.draw(true)
		p.mu.Unlock()
	}
}

// cellWidth is how many terminal columns a rune takes: two for East Asian wide and
// full-width characters, none for combining marks and controls.
func cellWidth(r rune) int {
	switch {
	case unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r) || unicode.IsControl(r):
		return 0
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

// ansiEscape matches the terminal escape sequences (colours, cursor moves) of tools' output.
var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)

// clip cuts s to at most cols terminal columns, marking the cut with "…". Of a line that a
// tool redrew with carriage returns (a progress bar) it keeps what was drawn last; escape
// sequences go, and a tab is a space.
func clip(s string, cols int) string {
	if i := strings.LastIndex(strings.TrimRight(s, "\r"), "\r"); i >= 0 {
		s = s[i+1:]
	}
	s = ansiEscape.ReplaceAllString(s, "")
	s = strings.NewReplacer("\r", "", "\t", " ").Replace(s)
	if textWidth(s) <= cols {
		return s
	}
	var b strings.Builder
	w := 0
	for _, r := range s {
		cw := cellWidth(r)
		if w+cw > cols-1 {
			break
		}
		b.WriteRune(r)
		w += cw
	}
	return b.String() + "…"
}

func textWidth(s string) int {
	n := 0
	for _, r := range s {
		n += cellWidth(r)
	}
	return n
}

// align writes left and right on one line of cols columns, clipping left to make room.
func align(left, right string, cols int) string {
	room := cols - textWidth(right) - 1
	if room < 10 {
		return clip(left, cols)
	}
	left = clip(left, room)
	return left + strings.Repeat(" ", room-textWidth(left)+1) + right
}

func short(key string) string { return fasthit.ShortKey(key) }

func human(n int64) string { return engine.HumanBytes(n) }
