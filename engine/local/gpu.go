package local

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"time"

	"tags.cncf.io/container-device-interface/pkg/cdi"

	"github.com/strata-build/strata/spec"
)

// gpu is a GPU device this machine offers through CDI.
type gpu struct {
	name    string // the CDI device, "nvidia.com/gpu=0"
	product string // "NVIDIA H100 80GB HBM3", when known
}

// gpus lists the GPU devices of the CDI specs: devices of a class "gpu", but not the
// "all" alias. A device's product is its annotation (a key ending in "product" or "model"),
// or, for NVIDIA's, what nvidia-smi says of the GPU of that index or UUID.
func (e *Engine) gpus() ([]gpu, error) {
	cache, err := cdi.NewCache(cdi.WithSpecDirs(e.cdiDirs...), cdi.WithAutoRefresh(false))
	if err != nil {
		return nil, fmt.Errorf("reading CDI specs from %s: %w", strings.Join(e.cdiDirs, ", "), err)
	}
	var smi map[string]string
	var out []gpu
	for _, name := range cache.ListDevices() {
		kind, dev, _ := strings.Cut(name, "=")
		if !strings.HasSuffix(kind, "/gpu") || dev == "all" {
			continue
		}
		g := gpu{name: name}
		if d := cache.GetDevice(name); d != nil {
			for k, v := range d.Annotations {
				if strings.HasSuffix(k, "product") || strings.HasSuffix(k, "model") {
					g.product = v
				}
			}
		}
		if g.product == "" && strings.HasPrefix(kind, "nvidia.com/") {
			if smi == nil {
				smi = nvidiaProducts()
			}
			g.product = smi[dev]
		}
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// nvidiaProducts maps NVIDIA GPUs' indexes and UUIDs to their names, when nvidia-smi runs.
func nvidiaProducts() map[string]string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nvidia-smi", "--query-gpu=index,uuid,name", "--format=csv,noheader").Output()
	m := map[string]string{}
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(bytes.TrimSpace(out)), "\n") {
		f := strings.SplitN(line, ",", 3)
		if len(f) == 3 {
			name := strings.TrimSpace(f[2])
			m[strings.TrimSpace(f[0])], m[strings.TrimSpace(f[1])] = name, name
		}
	}
	return m
}

// matches reports whether a GPU's product is of the requested type: "ANY" is any GPU; a
// type such as "A100-80GB" needs each of its parts in the product's name.
func (g gpu) matches(typ string) bool {
	if typ == "ANY" {
		return true
	}
	product := strings.ToUpper(strings.ReplaceAll(g.product, " ", ""))
	if product == "" {
		return false
	}
	for _, part := range strings.Split(typ, "-") {
		if !strings.Contains(product, part) {
			return false
		}
	}
	return true
}

// gpuDevices picks the CDI devices for a GPU request, or says what the machine has.
func (e *Engine) gpuDevices(req *spec.GPU) ([]string, error) {
	if req == nil {
		return nil, nil
	}
	all, err := e.gpus()
	if err != nil {
		return nil, err
	}
	var picked []string
	for _, g := range all {
		if len(picked) < req.Count && g.matches(req.Type) {
			picked = append(picked, g.name)
		}
	}
	if len(picked) == req.Count {
		return picked, nil
	}
	var have []string
	for _, g := range all {
		p := g.product
		if p == "" {
			p = "product unknown"
		}
		have = append(have, fmt.Sprintf("%s (%s)", g.name, p))
	}
	if len(have) == 0 {
		have = []string{"no GPU in the CDI specs of " + strings.Join(e.cdiDirs, ", ")}
	}
	return nil, fmt.Errorf("the request for GPU %s:%d cannot be met on this machine, which has: %s", req.Type, req.Count, strings.Join(have, "; "))
}
