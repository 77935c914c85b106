// Package pyindex is a small PEP 503 "simple" package index and a wheel writer, so that
// tests and examples install real Python packages with real pip on a machine with no PyPI.
package pyindex

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
)

// Wheel returns a pure-Python wheel (py3-none-any) of the given files, which are paths
// inside site-packages mapped to their content (a NAME-VERSION.dist-info/METADATA among them
// replaces the minimal one, to declare extras or dependencies). The bytes are the same on
// every call.
func Wheel(name, version string, files map[string]string) []byte {
	dist := fmt.Sprintf("%s-%s.dist-info", normalize(name), version)
	all := map[string]string{}
	for p, c := range files {
		all[p] = c
	}
	if _, ok := all[dist+"/METADATA"]; !ok {
		all[dist+"/METADATA"] = fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", name, version)
	}
	all[dist+"/WHEEL"] = "Wheel-Version: 1.0\nGenerator: strata-pyindex\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
	paths := make([]string, 0, len(all))
	for p := range all {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	var record strings.Builder
	zw := zip.NewWriter(&buf)
	for _, p := range paths {
		w, _ := zw.Create(p)
		w.Write([]byte(all[p]))
		sum := sha256.Sum256([]byte(all[p]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", p, base64.RawURLEncoding.EncodeToString(sum[:]), len(all[p]))
	}
	fmt.Fprintf(&record, "%s/RECORD,,\n", dist)
	w, _ := zw.Create(dist + "/RECORD")
	w.Write([]byte(record.String()))
	zw.Close()
	return buf.Bytes()
}

// WheelName is the file name of a wheel made by Wheel.
func WheelName(name, version string) string {
	return fmt.Sprintf("%s-%s-py3-none-any.whl", normalize(name), version)
}

var sep = regexp.MustCompile(`[-_.]+`)

func normalize(name string) string { return sep.ReplaceAllString(strings.ToLower(name), "_") }

// Handler serves wheels (file name to bytes) as a simple index under /simple/ with the
// files under /files/, each link carrying its sha256 as pip expects, and with PyPI's
// caching headers, so that pip's http cache keeps what it downloads as it does from PyPI.
func Handler(wheels map[string][]byte) http.Handler {
	projects := map[string][]string{}
	for file := range wheels {
		project := sep.ReplaceAllString(strings.ToLower(strings.SplitN(file, "-", 2)[0]), "-")
		projects[project] = append(projects[project], file)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/files/", func(w http.ResponseWriter, r *http.Request) {
		data, ok := wheels[strings.TrimPrefix(r.URL.Path, "/files/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		// As files.pythonhosted.org: a file never changes at its URL.
		w.Header().Set("Cache-Control", "max-age=365000000, immutable, public")
		w.Write(data)
	})
	mux.HandleFunc("/simple/", func(w http.ResponseWriter, r *http.Request) {
		project := sep.ReplaceAllString(strings.ToLower(strings.Trim(strings.TrimPrefix(r.URL.Path, "/simple/"), "/")), "-")
		files, ok := projects[project]
		if !ok {
			http.NotFound(w, r)
			return
		}
		sort.Strings(files)
		w.Header().Set("Cache-Control", "max-age=600, public") // as PyPI's simple pages
		fmt.Fprint(w, "<!DOCTYPE html>\n<html><body>\n")
		for _, f := range files {
			sum := sha256.Sum256(wheels[f])
			fmt.Fprintf(w, "<a href=\"/files/%s#sha256=%s\">%s</a><br>\n", f, hex.EncodeToString(sum[:]), f)
		}
		fmt.Fprint(w, "</body></html>\n")
	})
	return mux
}
