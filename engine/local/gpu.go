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

	"github.com/strata-build/strata/engine/gpus"
	"github.com/strata-build/strata/spec"
)

// gpus lists the GPU devices of the CDI specs (gpus.FromCDI). A device without a product
// annotation that is NVIDIA's gets what nvidia-smi says of the GPU of that index or UUID.
func (e *Engine) gpus() ([]gpus.Device, error) {
	cache, err := cdi.NewCache(cdi.WithSpecDirs(e.cdiDirs...), cdi.WithAutoRefresh(false))
	if err != nil {
		return nil, fmt.Errorf("reading CDI specs from %s: %w", strings.Join(e.cdiDirs, ", "), err)
	}
	var smi map[string]string
	var out []gpus.Device
	for _, name := range cache.ListDevices() {
		var ann map[string]string
		if d := cache.GetDevice(name); d != nil {
			ann = d.Annotations
		}
		g, ok := gpus.FromCDI(name, ann)
		if !ok {
			continue
		}
		kind, dev, _ := strings.Cut(name, "=")
		if g.Product == "" && strings.HasPrefix(kind, "nvidia.com/") {
			if smi == nil {
				smi = nvidiaProducts()
			}
			g.Product = smi[dev]
		}
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
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

// gpuDevices picks the CDI devices for a GPU request, or says what the machine has.
func (e *Engine) gpuDevices(req *spec.GPU) ([]string, error) {
	if req == nil {
		return nil, nil
	}
	all, err := e.gpus()
	if err != nil {
		return nil, err
	}
	return gpus.Pick(all, req, "this machine", "the CDI specs of "+strings.Join(e.cdiDirs, ", "))
}
