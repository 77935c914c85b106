package gpus

import (
	"strings"
	"testing"

	"github.com/strata-build/strata/spec"
)

func TestPick(t *testing.T) {
	var all []Device
	for name, product := range map[string]string{"x.com/gpu=0": "NVIDIA H100 80GB HBM3", "x.com/gpu=1": "NVIDIA A10G", "x.com/gpu=all": "", "x.com/nic=0": "NIC"} {
		if d, ok := FromCDI(name, map[string]string{"x.com/gpu.product": product}); ok {
			all = append(all, d)
		}
	}
	if len(all) != 2 {
		t.Fatalf("FromCDI kept %v: want the two GPUs, not the alias or the NIC", all)
	}
	if all[0].Name > all[1].Name {
		all[0], all[1] = all[1], all[0]
	}
	for _, c := range []struct {
		req  spec.GPU
		want string
	}{
		{spec.GPU{Type: "H100", Count: 1}, "x.com/gpu=0"},
		{spec.GPU{Type: "A10G", Count: 1}, "x.com/gpu=1"},
		{spec.GPU{Type: "ANY", Count: 2}, "x.com/gpu=0 x.com/gpu=1"},
		{spec.GPU{Type: "H100-80GB", Count: 1}, "x.com/gpu=0"},
	} {
		got, err := Pick(all, &c.req, "this machine", "here")
		if err != nil || strings.Join(got, " ") != c.want {
			t.Errorf("%s:%d: %v %v, want %s", c.req.Type, c.req.Count, got, err, c.want)
		}
	}
	_, err := Pick(all, &spec.GPU{Type: "B200", Count: 2}, "this machine", "here")
	if err == nil || !strings.Contains(err.Error(), "GPU B200:2 cannot be met on this machine, which has") || !strings.Contains(err.Error(), "x.com/gpu=1 (NVIDIA A10G)") {
		t.Errorf("an unmet request: %v", err)
	}
	if _, err := Pick(nil, &spec.GPU{Type: "ANY", Count: 1}, "this machine", "the CDI specs of /etc/cdi"); err == nil || !strings.Contains(err.Error(), "no GPU in the CDI specs of /etc/cdi") {
		t.Errorf("no GPU: %v", err)
	}
}
