// Package gpus picks the GPU devices of a build step's or a container's request (spec.GPU)
// among the CDI devices an engine offers: the local engine's CDI specs, or a buildkitd
// worker's.
package gpus

import (
	"fmt"
	"strings"

	"github.com/strata-build/strata/spec"
)

// Device is a GPU offered through CDI.
type Device struct {
	Name    string // the CDI device, "nvidia.com/gpu=0"
	Product string // "NVIDIA H100 80GB HBM3", when known
}

// FromCDI is the GPU a CDI device is, if it is one: a device of a class "gpu", but not the
// "all" alias. Its product is an annotation whose key ends in "product" or "model".
func FromCDI(name string, annotations map[string]string) (Device, bool) {
	kind, dev, _ := strings.Cut(name, "=")
	if !strings.HasSuffix(kind, "/gpu") || dev == "all" {
		return Device{}, false
	}
	d := Device{Name: name}
	for k, v := range annotations {
		if strings.HasSuffix(k, "product") || strings.HasSuffix(k, "model") {
			d.Product = v
		}
	}
	return d, true
}

// matches reports whether a GPU's product is of the requested type: "ANY" is any GPU; a
// type such as "A100-80GB" needs each of its parts in the product's name.
func (d Device) matches(typ string) bool {
	if typ == "ANY" {
		return true
	}
	product := strings.ToUpper(strings.ReplaceAll(d.Product, " ", ""))
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

// Pick returns the names of the first devices of all (in its order) that meet the request,
// or an error that lists what there is on host ("this machine"), or says there is no GPU in
// where (the CDI specs it read).
func Pick(all []Device, req *spec.GPU, host, where string) ([]string, error) {
	if req == nil {
		return nil, nil
	}
	var picked []string
	for _, d := range all {
		if len(picked) < req.Count && d.matches(req.Type) {
			picked = append(picked, d.Name)
		}
	}
	if len(picked) == req.Count {
		return picked, nil
	}
	var have []string
	for _, d := range all {
		p := d.Product
		if p == "" {
			p = "product unknown"
		}
		have = append(have, fmt.Sprintf("%s (%s)", d.Name, p))
	}
	if len(have) == 0 {
		have = []string{"no GPU in " + where}
	}
	return nil, fmt.Errorf("the request for GPU %s:%d cannot be met on %s, which has: %s", req.Type, req.Count, host, strings.Join(have, "; "))
}
