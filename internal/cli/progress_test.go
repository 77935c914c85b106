package cli

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strata-build/strata"
)

// TestTTYFrameFitsTheTerminal: every line fits the width, counted in terminal columns (wide
// characters take two, combining marks none), and a build with more layers than rows shows
// the header and the latest layers only.
func TestTTYFrameFitsTheTerminal(t *testing.T) {
	p := &progress{mode: "tty", start: time.Now()}
	now := time.Now()
	for i := 0; i < 12; i++ {
		p.layers = append(p.layers, &layerRow{name: fmt.Sprintf("[%d/13] run_commands", i+1), status: strata.StatusDone, started: now, seconds: 1.5})
	}
	p.layers = append(p.layers, &layerRow{name: "[13/13] pip_install", status: strata.StatusBuilding, started: now, logs: []string{
		"Collecting 数据处理库==1.0 (from -r requirements.txt)", "é́ combining", "\x1b[31mred\x1b[0m text", "50%\r100% done",
	}})
	for _, size := range [][2]int{{80, 25}, {40, 8}, {20, 4}} {
		lines := p.frame(size[0], size[1], false)
		if len(lines) > size[1] {
			t.Errorf("%dx%d: %d lines", size[0], size[1], len(lines))
		}
		for _, l := range lines {
			if w := textWidth(l); w > size[0] {
				t.Errorf("%dx%d: %q is %d columns", size[0], size[1], l, w)
			}
		}
		if !strings.HasPrefix(lines[0], "[+] Building") {
			t.Errorf("%dx%d: header %q", size[0], size[1], lines[0])
		}
		if last := lines[len(lines)-1]; !strings.Contains(last, "100% done") && size[0] >= 40 {
			t.Errorf("%dx%d: the running layer's last log line is not last: %q", size[0], size[1], last)
		}
	}
	lines := p.frame(80, 25, false)
	joined := strings.Join(lines, "\n")
	for _, want := range []string{" => [1/13] run_commands", "1.5s", " => => # Collecting 数据处理库", " => => # red text"} {
		if !strings.Contains(joined, want) {
			t.Errorf("frame lacks %q:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "\x1b") || strings.Contains(joined, "50%") {
		t.Errorf("escapes or overwritten text in the frame:\n%s", joined)
	}
	if w := textWidth("数据"); w != 4 {
		t.Errorf("wide characters take %d columns", w)
	}
}

// TestTTYRedrawClearsWhatItDrewBefore: a shorter frame moves up over the last one and
// clears its extra lines.
func TestTTYRedrawClearsWhatItDrewBefore(t *testing.T) {
	var out bytes.Buffer
	p := &progress{w: &out, mode: "tty", start: time.Now(), size: func() (int, int) { return 60, 20 }}
	p.layers = []*layerRow{{name: "[1/1] run_commands", status: strata.StatusBuilding, started: time.Now(), logs: []string{"a", "b", "c"}}}
	p.draw(false)
	if p.drawn != 5 {
		t.Fatalf("drew %d lines", p.drawn)
	}
	out.Reset()
	p.layers[0].status = strata.StatusDone
	p.draw(true)
	s := out.String()
	if !strings.HasPrefix(s, "\x1b[5A") || !strings.HasSuffix(s, "\x1b[3A") || !strings.Contains(s, "FINISHED") {
		t.Errorf("redraw %q", s)
	}
}
