package strata

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
)

var programCache struct {
	sync.Mutex
	paths map[string]string // platform -> binary
}

// programBinary returns a build of the running program that runs in a Linux container of
// the platform ("linux/amd64"): the running binary itself when it is a static Linux
// executable of that architecture (a CGO_ENABLED=0 build), else one built from the source of
// its main package with CGO_ENABLED=0 and kept in strata's home, keyed by the running
// binary, so that it is built once.
func programBinary(ctx context.Context, home, platform string) (string, error) {
	arch := strings.Split(platform+"//", "/")[1]
	programCache.Lock()
	defer programCache.Unlock()
	if p, ok := programCache.paths[platform]; ok {
		return p, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return "", err
	}
	path := exe
	if why := runsIn(exe, arch); why != "" {
		if path, err = rebuildProgram(ctx, home, exe, arch, why); err != nil {
			return "", err
		}
	}
	if programCache.paths == nil {
		programCache.paths = map[string]string{}
	}
	programCache.paths[platform] = path
	return path, nil
}

// runsIn says why a binary cannot run in a Linux container of arch ("" if it can): it must
// be a Linux ELF of that machine, with no dynamic loader (which the image may lack).
func runsIn(path, arch string) string {
	f, err := elf.Open(path)
	if err != nil {
		return "it is not a Linux executable"
	}
	defer f.Close()
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "386": elf.EM_386, "arm": elf.EM_ARM, "riscv64": elf.EM_RISCV, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390}[arch]
	if f.Machine != machine {
		return fmt.Sprintf("it is built for %s, the image for %s", f.Machine, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "it is linked dynamically (cgo), and the image may not have its C library"
		}
	}
	return ""
}

// rebuildProgram builds the program's main package for the container, once per binary: per
// path, device, inode, size, mtime and ctime of the running executable (a binary replaced
// with its mtime kept, as cp -p and install -p do, still has a new ctime).
func rebuildProgram(ctx context.Context, home, exe, arch, why string) (string, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(exe, &st); err != nil {
		return "", &os.PathError{Op: "stat", Path: exe, Err: err}
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%d\x00%d\x00%d\x00%d\x00%s", exe, st.Ino, st.Size,
		st.Mtim.Nano(), st.Ctim.Nano(), st.Dev, arch)))
	out := filepath.Join(home, "programs", hex.EncodeToString(sum[:12]), "program")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if mainFile == "" {
		return "", fmt.Errorf("the running program cannot run in the container (%s), and strata cannot rebuild it: its main must call strata.Main() first, which tells strata where its source is; or build it with CGO_ENABLED=0", why)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		if goTool = filepath.Join(runtime.GOROOT(), "bin", "go"); !fileExists(goTool) {
			return "", fmt.Errorf("the running program cannot run in the container (%s), and rebuilding it needs the go command, which is not on PATH; build the program with CGO_ENABLED=0", why)
		}
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	tmp := out + ".tmp"
	args := []string{"build", "-o", tmp, "."}
	if strings.HasSuffix(mainFile, "_test.go") {
		args = []string{"test", "-c", "-o", tmp, "."}
	}
	cmd := exec.CommandContext(ctx, goTool, args...)
	cmd.Dir = filepath.Dir(mainFile)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the program for the container (%s) in %s: %v\n%s", why, cmd.Dir, err, b)
	}
	return out, os.Rename(tmp, out)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
