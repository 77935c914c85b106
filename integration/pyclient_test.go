package integration

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestPythonClient runs the Python package's own tests (python/tests, under python3 -m
// unittest) against this build of strata and the suite's store: the Python, YAML and Go
// forms of the same images give the same keys, run_function's key follows its helpers, and
// one image is built and run. None may be skipped here.
func TestPythonClient(t *testing.T) {
	need(t, "python3", "runc", "mmdebstrap")
	cmd := exec.Command("python3", "-m", "unittest", "discover", "-s", "tests", "-v")
	cmd.Dir = "../python"
	cmd.Env = append(os.Environ(), "STRATA_BIN="+strataBin, "STRATA_HOME="+home, "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 -m unittest: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "skipped") {
		t.Errorf("Python tests were skipped:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	t.Logf("%s; %s", lines[len(lines)-3], lines[len(lines)-1])
}
