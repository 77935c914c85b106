// Package fasthit is the strata command's cache-hit path: `strata build -f FILE` that would
// find every layer cached, or `strata spec -f FILE` that would resolve to the same keys,
// answers from a memo of its last run in the strata front (cmd/strata), a small program that
// links none of the rest (BuildKit's parsers, registry clients, runc plumbing). Everything
// else runs strata-core (cmd/strata-core), the whole command, which writes the memos.
//
// A memo is written by a run whose inputs it can describe completely: the command line and
// working folder, the environment strata reads (STRATA_*, SOURCE_DATE_EPOCH, HOME,
// XDG_DATA_HOME, PATH, TMPDIR), the user, the strata front and strata-core executables, the
// spec file's bytes, and the local files and folders the plan copies, each by its identity
// (device, inode, size, times); and whose plan reads nothing else (no registry or remote
// sources, no stages, mounts, functions or secrets; see internal/cli). A build's memo also
// lists the store files that make the result: the image's record, manifest and config, and
// each layer's cache entry and bytes. A later run with the same inputs, whose files are all
// still those, is the same cache hit: it prints what the full run would print and writes
// nothing. Anything else (a changed input, a file replaced or gone, a memo that cannot be
// read) runs in full, which is always right. ccache's direct mode works the same way.
package fasthit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/home"
)

// KeyEnv carries a command line's key from the strata front to strata-core, which writes the
// memo under it, and from strata-core to the process it runs again in a user namespace
// (rootless), where the user and the environment are no longer the ones the key is of. Its
// value is "PID:KEY", PID the front's, which strata-core keeps (the front execs it): a key
// left in an environment that another process inherits is not taken (TakeKey).
const KeyEnv = "_STRATA_FASTHIT_KEY"

// DisableEnv, set, turns the cache-hit path off: every build runs in full.
const DisableEnv = "STRATA_NO_FAST_HIT"

// memoFormat is the version of the memo's layout, which the strata-core that writes a memo
// and the front that reads it must share: a front and a strata-core of other versions (one
// found on PATH) never read each other's memos wrongly.
const memoFormat = 1

// Memo is what a build or a resolve left for the next run of the same command line.
type Memo struct {
	// Format is memoFormat, the layout the memo was written in.
	Format int `json:"format"`
	// Command is the command that wrote it: "build" or "spec".
	Command string `json:"command"`
	// Spec is the sha256 of the spec file's bytes.
	Spec string `json:"spec"`
	// Exe is the identity of the strata-core executable that wrote the memo (the front's own
	// is in the memo's key).
	Exe Ident `json:"exe"`
	// Files are the store files the image is made of, with their identities.
	Files []File `json:"files,omitempty"`
	// Local are the local files and folders the plan copies, as the resolve listed them.
	// They follow the JSON in the memo file, in a compact form: a tree of 10,000 files
	// decodes in well under a millisecond.
	Local []Entry `json:"-"`
	// LocalCount is how many entries follow: a memo cut short is not read as one with
	// fewer files.
	LocalCount int `json:"local_count,omitempty"`
	// Output is what `strata spec` printed.
	Output string `json:"output,omitempty"`
	// What the build printed: its layers (all of them cached now), warnings, and the
	// image's name and manifest.
	Layers   []Layer  `json:"layers"`
	Warnings []string `json:"warnings,omitempty"`
	Name     string   `json:"name"`
	Manifest string   `json:"manifest"`
}

// Layer is a layer as the build's progress shows it.
type Layer struct {
	Method string `json:"method"`
	Title  string `json:"title,omitempty"`
	Key    string `json:"key"`
	Size   int64  `json:"size"`
}

// File is a file or folder as it was when the memo was written: its bytes, for a file that is
// written again in place or by rename (records, the store's id maps, /etc/subuid), or its
// identity, for one that is never changed, only made or removed (blobs, snapshots, programs).
// Absent says it did not exist, and must not.
type File struct {
	Path   string `json:"path"`
	Digest string `json:"digest,omitempty"`
	Ident  *Ident `json:"ident,omitempty"`
	Absent bool   `json:"absent,omitempty"`
}

// AddRead keeps a JSON file by its bytes, and decodes those same bytes into v: what the
// memo says of the file is what it holds, whatever writes it meanwhile.
func (m *Memo) AddRead(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	m.Files = append(m.Files, File{Path: path, Digest: digestOf(b)})
	return nil
}

// AddBytes keeps a file by its bytes, or as absent if it does not exist.
func (m *Memo) AddBytes(path string) error {
	d, err := FileDigest(path)
	if errors.Is(err, fs.ErrNotExist) {
		m.Files = append(m.Files, File{Path: path, Absent: true})
		return nil
	}
	if err != nil {
		return err
	}
	m.Files = append(m.Files, File{Path: path, Digest: d})
	return nil
}

// AddIdent keeps a file that is never changed in place (a blob, a snapshot, a program) by its
// identity.
func (m *Memo) AddIdent(path string) error {
	id, err := IdentOf(path)
	if err != nil {
		return err
	}
	m.Files = append(m.Files, File{Path: path, Ident: &id})
	return nil
}

// holds says whether the file is still as the memo found it.
func (f File) holds() bool {
	switch {
	case f.Absent:
		_, err := IdentOf(f.Path)
		return errors.Is(err, fs.ErrNotExist)
	case f.Digest != "":
		d, err := FileDigest(f.Path)
		return err == nil && d == f.Digest
	case f.Ident != nil:
		id, err := IdentOf(f.Path)
		return err == nil && id == *f.Ident
	}
	return false
}

// Entry is a local file or folder and its identity.
type Entry struct {
	Path  string
	Ident Ident
}

// appendLocal encodes entries: for each, its path (length-prefixed) and its identity's five
// numbers, as varints.
func appendLocal(b []byte, entries []Entry) []byte {
	for _, e := range entries {
		b = binary.AppendUvarint(b, uint64(len(e.Path)))
		b = append(b, e.Path...)
		b = binary.AppendUvarint(b, e.Ident.Dev)
		b = binary.AppendUvarint(b, e.Ident.Ino)
		b = binary.AppendVarint(b, e.Ident.Size)
		b = binary.AppendVarint(b, e.Ident.Mtime)
		b = binary.AppendVarint(b, e.Ident.Ctime)
	}
	return b
}

// decodeLocal reads the count entries appendLocal wrote, and false if b holds another
// number. The paths share b's memory, which must not change after.
func decodeLocal(b []byte, count int) ([]Entry, bool) {
	if count < 0 || count > len(b) {
		return nil, false
	}
	all := unsafe.String(unsafe.SliceData(b), len(b))
	entries := make([]Entry, 0, count)
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, false
		}
		at := len(all) - len(b) + k
		e := Entry{Path: all[at : at+int(n)]}
		b = b[k+int(n):]
		for _, p := range []*uint64{&e.Ident.Dev, &e.Ident.Ino} {
			if *p, k = binary.Uvarint(b); k <= 0 {
				return nil, false
			}
			b = b[k:]
		}
		for _, p := range []*int64{&e.Ident.Size, &e.Ident.Mtime, &e.Ident.Ctime} {
			if *p, k = binary.Varint(b); k <= 0 {
				return nil, false
			}
			b = b[k:]
		}
		entries = append(entries, e)
	}
	return entries, len(entries) == count
}

// localHolds says whether every local file and folder is still the one the memo found: one
// lstat each, relative to its folder as the walk's, spread over the cores, and nothing else.
// A folder's times change when an entry is made, removed or renamed in it, so a new file is
// seen as well as a changed one.
func localHolds(entries []Entry) bool {
	if len(entries) == 0 {
		return true
	}
	workers := min(2*runtime.GOMAXPROCS(0), (len(entries)+255)/256)
	chunk := (len(entries) + workers - 1) / workers
	var changed atomic.Bool
	var wg sync.WaitGroup
	for i := 0; i < len(entries); i += chunk {
		part := entries[i:min(i+chunk, len(entries))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !partHolds(part, &changed) {
				changed.Store(true)
			}
		}()
	}
	wg.Wait()
	return !changed.Load()
}

// partHolds lstats entries, each relative to its folder, opened once for the entries in it
// that follow each other (a sorted listing's files).
func partHolds(part []Entry, changed *atomic.Bool) bool {
	dirfd, dir := -1, ""
	defer func() {
		if dirfd >= 0 {
			unix.Close(dirfd)
		}
	}()
	var st unix.Stat_t
	for _, e := range part {
		if changed.Load() {
			return true // another part has answered
		}
		i := strings.LastIndexByte(e.Path, '/')
		if i <= 0 || i == len(e.Path)-1 {
			if id, err := IdentOf(e.Path); err != nil || id != e.Ident {
				return false
			}
			continue
		}
		if d := e.Path[:i]; d != dir || dirfd < 0 {
			if dirfd >= 0 {
				unix.Close(dirfd)
			}
			var err error
			if dirfd, err = unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
				return false
			}
			dir = d
		}
		if unix.Fstatat(dirfd, e.Path[i+1:], &st, unix.AT_SYMLINK_NOFOLLOW) != nil || identOfUnix(&st) != e.Ident {
			return false
		}
	}
	return true
}

func identOfUnix(st *unix.Stat_t) Ident {
	return Ident{Dev: st.Dev, Ino: st.Ino, Size: st.Size,
		Mtime: st.Mtim.Sec*1e9 + st.Mtim.Nsec, Ctime: st.Ctim.Sec*1e9 + st.Ctim.Nsec}
}

// Ident is what tells a file from any other one, or from itself changed: a file written
// again by rename (as the store writes its records) has another inode, and a change in
// place another size or times.
type Ident struct {
	Dev   uint64 `json:"dev"`
	Ino   uint64 `json:"ino"`
	Size  int64  `json:"size"`
	Mtime int64  `json:"mtime"`
	Ctime int64  `json:"ctime"`
}

// IdentOf is a file's identity, as lstat gives it.
func IdentOf(path string) (Ident, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return Ident{}, err
	}
	return IdentOfStat(&st), nil
}

// IdentOfStat is the identity an lstat gave.
func IdentOfStat(st *syscall.Stat_t) Ident {
	return Ident{Dev: uint64(st.Dev), Ino: st.Ino, Size: st.Size,
		Mtime: st.Mtim.Sec*1e9 + st.Mtim.Nsec, Ctime: st.Ctim.Sec*1e9 + st.Ctim.Nsec}
}

// ExeIdent is the identity of the running executable (the file /proc/self/exe links to).
func ExeIdent() (Ident, error) { return statIdent("/proc/self/exe") }

// statIdent is the identity of the file a path names, following symbolic links as exec does.
func statIdent(path string) (Ident, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return Ident{}, err
	}
	return IdentOfStat(&st), nil
}

// affects says whether an environment variable can change what a fully cached build
// gives: where the store is, the keys (SOURCE_DATE_EPOCH, STRATA_PYTHON_*...), whether
// the cache is read (STRATA_FORCE_BUILD...), the engine, and what a build may need (PATH).
// The test TestEnvCovered holds every variable strata reads to this list or to a reason.
func affects(name string) bool {
	if strings.HasPrefix(name, "STRATA_") {
		return true
	}
	switch name {
	case "SOURCE_DATE_EPOCH", "HOME", "XDG_DATA_HOME", "PATH", "TMPDIR":
		return true
	}
	return false
}

// Key is the key of a command line (its arguments after the program's name), run in this
// folder by this user with this environment, by this executable (the strata front, which
// reads the memo): the name of its memo.
func Key(args []string) string {
	h := sha256.New()
	put := func(s string) { fmt.Fprintf(h, "%d:%s\n", len(s), s) }
	put("strata fast hit v2")
	exe, _ := ExeIdent()
	put(fmt.Sprint(exe))
	wd, _ := os.Getwd()
	put(wd)
	put(fmt.Sprint(os.Getuid(), os.Geteuid(), os.Getgid()))
	put(fmt.Sprint(len(args)))
	for _, a := range args {
		put(a)
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); affects(k) {
			env = append(env, kv)
		}
	}
	slices.Sort(env)
	for _, kv := range env {
		put(kv)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TakeKey is the key the front left in KeyEnv for this process, which it executed, or, with
// parent (a rootless strata-core run again in its user namespace), for the parent process;
// "" if there is none, or it was left for another process.
func TakeKey(parent bool) string {
	pid, key, ok := strings.Cut(os.Getenv(KeyEnv), ":")
	if !ok || key == "" {
		return ""
	}
	if pid == strconv.Itoa(os.Getpid()) || parent && pid == strconv.Itoa(os.Getppid()) {
		return key
	}
	return ""
}

// Path is where the memo of a key is kept in a store.
func Path(storeDir, key string) string { return path.Join(storeDir, "memos", key+".memo") }

// Write leaves a memo, unless an equal one is there already: its JSON on one line, then its
// local entries. It is not synced: a memo lost or cut short by a crash is one that cannot be
// read (the JSON holds the number of entries), and the next run builds in full.
func Write(storeDir, key string, m *Memo) error {
	m.Format, m.LocalCount = memoFormat, len(m.Local)
	j, err := json.Marshal(m)
	if err != nil {
		return err
	}
	b := appendLocal(append(j, '\n'), m.Local)
	p := Path(storeDir, key)
	if old, err := os.ReadFile(p); err == nil && string(old) == string(b) {
		return nil
	}
	if err := os.MkdirAll(path.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(path.Dir(p), ".tmp-")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// Remove drops every memo of a store (strata prune does).
func Remove(storeDir string) error { return os.RemoveAll(path.Join(storeDir, "memos")) }

// Command is the part of a command line the cache-hit path reads: `build` or `spec`, its
// spec file, and a build's progress mode. Every other flag is left to the memo's key, which
// holds the whole line; a memo is only written for lines with no other flags.
type Command struct {
	Name     string
	File     string
	Progress string
}

// Parse reads a `strata build` or `strata spec` command line; false if it is not one the
// cache-hit path can answer. A build takes -f, -t and --progress; a resolve -f and --json.
func Parse(args []string) (Command, bool) {
	c := Command{Progress: "auto"}
	if len(args) == 0 || (args[0] != "build" && args[0] != "spec") {
		return c, false
	}
	c.Name = args[0]
	for i := 1; i < len(args); i++ {
		a := args[i]
		if c.Name == "spec" && a == "--json" {
			continue
		}
		name, value, inline := strings.Cut(a, "=")
		switch {
		case name == "-f" || name == "--file":
		case c.Name == "build" && (name == "-t" || name == "--tag" || name == "--progress"):
		default:
			return c, false
		}
		if !inline {
			if i+1 >= len(args) {
				return c, false
			}
			i++
			value = args[i]
		}
		switch name {
		case "-f", "--file":
			c.File = value
		case "--progress":
			c.Progress = value
		}
	}
	switch strings.ToLower(path.Ext(c.File)) {
	case ".yaml", ".yml", ".json":
		return c, true
	}
	return c, false
}

// Try answers a `strata build` or `strata spec` command line from its memo if it still
// holds for core (the strata-core the front would run), printing what the full run would;
// false, having printed nothing, in every other case. Then, for a line the cache-hit path
// answers, it leaves the line's key in KeyEnv, for strata-core to write the memo under, and
// for any other line no key. The error is one of printing the answer, which the full run
// would have failed on too.
func Try(args []string, core string, stdout, stderr *os.File) (bool, error) {
	os.Unsetenv(KeyEnv)
	c, ok := Parse(args)
	if !ok || os.Getenv(DisableEnv) != "" {
		return false, nil
	}
	key := Key(args)
	os.Setenv(KeyEnv, strconv.Itoa(os.Getpid())+":"+key)
	if c.Name == "spec" {
		m, ok := Check(home.Dir(), key, core, c)
		if !ok {
			return false, nil
		}
		_, err := io.WriteString(stdout, m.Output)
		return true, err
	}
	mode := c.Progress
	if mode == "auto" {
		if isTerminal(stderr) {
			return false, nil // the live display is the full build's to draw
		}
		mode = "plain"
	}
	if mode != "plain" && mode != "json" {
		return false, nil
	}
	m, ok := Check(home.Dir(), key, core, c)
	if !ok {
		return false, nil
	}
	return true, Print(m, mode, time.Now(), stdout, stderr)
}

// Check reads the memo of a key and says whether it still holds for the command: it was
// written by the same command, the spec file has the same bytes, core is the strata-core
// that wrote it, and every store file and local file or folder is the same file.
func Check(storeDir, key, core string, c Command) (*Memo, bool) {
	b, err := os.ReadFile(Path(storeDir, key))
	if err != nil {
		return nil, false
	}
	j, local, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		return nil, false
	}
	var m Memo
	if json.Unmarshal(j, &m) != nil || m.Format != memoFormat || m.Command != c.Name || len(m.Layers) == 0 {
		return nil, false
	}
	if c.Name == "build" && len(m.Files) == 0 {
		return nil, false
	}
	if m.Local, ok = decodeLocal(local, m.LocalCount); !ok {
		return nil, false
	}
	if exe, err := statIdent(core); err != nil || exe != m.Exe {
		return nil, false
	}
	if d, err := FileDigest(c.File); err != nil || d != m.Spec {
		return nil, false
	}
	for _, f := range m.Files {
		if !f.holds() {
			return nil, false
		}
	}
	if !localHolds(m.Local) {
		return nil, false
	}
	return &m, true
}

// FileDigest is the sha256 of a file's bytes (a spec, a record: small files).
func FileDigest(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return digestOf(b), nil
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// event is strata.Event as its JSON progress writes it.
type event struct {
	Time   time.Time `json:"time"`
	Index  int       `json:"layer"`
	Total  int       `json:"total"`
	Method string    `json:"method"`
	Title  string    `json:"title,omitempty"`
	Key    string    `json:"key"`
	Status string    `json:"status"`
	Size   int64     `json:"size,omitempty"`
}

// Print writes what a fully cached build prints: a cached line per layer in the progress
// mode ("plain" or "json"), the warnings, then the image's name and manifest.
func Print(m *Memo, mode string, now time.Time, stdout, stderr io.Writer) error {
	var b strings.Builder
	for i, l := range m.Layers {
		if mode == "json" {
			j, _ := json.Marshal(event{Time: now, Index: i, Total: len(m.Layers), Method: l.Method, Title: l.Title, Key: l.Key, Status: "cached", Size: l.Size})
			b.Write(j)
			b.WriteByte('\n')
			continue
		}
		name := l.Method
		if l.Title != "" {
			name = l.Title
		}
		fmt.Fprintf(&b, "#%d %s cached %s\n", i, name, ShortKey(l.Key))
	}
	for _, w := range m.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	if _, err := io.WriteString(stderr, b.String()); err != nil {
		return err
	}
	_, err := fmt.Fprintf(stdout, "%s %s\n", m.Name, m.Manifest)
	return err
}

// ShortKey is a key as progress lines show it: its first 12 hex digits.
func ShortKey(key string) string {
	k := strings.TrimPrefix(key, "sha256:")
	if len(k) > 12 {
		k = k[:12]
	}
	return k
}

func isTerminal(f *os.File) bool {
	var t syscall.Termios
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return e == 0
}
