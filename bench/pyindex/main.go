// Command pyindex serves a PEP 503 package index of generated wheels on 127.0.0.1, for the
// package cache benchmark (bench/pipcache.sh). Each wheel holds a small module, a data
// file of compressible text (a third of its bytes) and a binary of pseudo-random bytes (the
// rest, as compiled extensions are), generated from a fixed seed so every run serves the same
// bytes. With
// -rate, every response is paced to that many megabytes per second, as a network link
// would be; the default serves as fast as loopback allows.
package main

import (
	"flag"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/strata-build/strata/internal/pyindex"
)

func main() {
	n := flag.Int("wheels", 10, "how many wheels")
	size := flag.Int("size", 5<<20, "bytes of data in each wheel")
	rate := flag.Float64("rate", 0, "pace responses to this many MB/s (0: unpaced)")
	flag.Parse()
	rng := rand.New(rand.NewSource(1))
	wheels := map[string][]byte{}
	var names []string
	for i := 0; i < *n; i++ {
		name := fmt.Sprintf("benchpkg%02d", i)
		blob := make([]byte, *size*2/3)
		rng.Read(blob)
		text := strings.Repeat(fmt.Sprintf("record %d of a generated data file, as packages ship them\n", i), *size/3/50)
		wheels[pyindex.WheelName(name, "1.0")] = pyindex.Wheel(name, "1.0", map[string]string{
			name + "/__init__.py":    fmt.Sprintf("NAME = %q\n", name),
			name + "/data/table.txt": text,
			name + "/_native.bin":    string(blob),
		})
		names = append(names, name)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var h http.Handler = pyindex.Handler(wheels)
	if *rate > 0 {
		h = paced(h, *rate*1e6)
	}
	// The first line says where the index is and what it serves; the script reads it.
	fmt.Printf("http://%s/simple %s\n", ln.Addr(), strings.Join(names, " "))
	_ = http.Serve(ln, h)
}

// paced writes each response at most bytesPerSec bytes per second.
func paced(h http.Handler, bytesPerSec float64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&pacedWriter{ResponseWriter: w, rate: bytesPerSec, start: time.Now()}, r)
	})
}

type pacedWriter struct {
	http.ResponseWriter
	rate  float64
	start time.Time
	n     int
}

func (p *pacedWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		chunk := min(len(b), 64<<10)
		k, err := p.ResponseWriter.Write(b[:chunk])
		written += k
		p.n += k
		if err != nil {
			return written, err
		}
		b = b[chunk:]
		if due := time.Duration(float64(p.n) / p.rate * float64(time.Second)); due > time.Since(p.start) {
			time.Sleep(due - time.Since(p.start))
		}
	}
	return written, nil
}
