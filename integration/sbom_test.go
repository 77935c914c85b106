package integration

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/strata-build/strata"
	"github.com/strata-build/strata/internal/pyindex"
	"github.com/strata-build/strata/internal/sbomtest"
)

// TestResolvedPackagesAndSBOM: each layer records the packages it installed, as apt and pip
// resolved them (an unpinned requirement shows the version it got); strata inspect shows
// them; strata sbom writes SPDX and CycloneDX documents that validate against their
// schemas; strata push --sbom attaches the document to the pushed image as an OCI referrer.
func TestResolvedPackagesAndSBOM(t *testing.T) {
	need(t, "runc", "mmdebstrap")
	idx := packageIndex(t, map[string][]byte{
		pyindex.WheelName("greet", "1.0"): pyindex.Wheel("greet", "1.0", map[string]string{"greet/__init__.py": ""}),
		pyindex.WheelName("greet", "1.2"): pyindex.Wheel("greet", "1.2", map[string]string{"greet/__init__.py": ""}),
	})
	img := base().AptInstall("hello").
		PipInstallWith(strata.PipInstallOptions{Packages: []string{"greet"}, PipOptions: strata.PipOptions{IndexURL: idx}})
	build(t, img, "it-sbom")

	out, err := cli(t, "inspect", "it-sbom", "--json")
	if err != nil {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	var in strata.Inspect
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatal(err)
	}
	installed := func(layer int) map[string]string {
		m := map[string]string{}
		if p := in.Layers[layer].Packages; p != nil {
			for _, pkg := range p.Added {
				m[pkg.Type+"/"+pkg.Name] = pkg.Version
			}
		}
		return m
	}
	if base := installed(0); base["deb/libc6"] == "" || base["deb/python3"] == "" {
		t.Errorf("the base layer's Debian packages are not listed: %d packages", len(base))
	}
	if apt := installed(1); len(apt) != 1 || apt["deb/hello"] == "" {
		t.Errorf("the apt layer installed %v, want hello alone", apt)
	}
	// The unpinned requirement resolved to the newest version, and says so.
	if pip := installed(2); len(pip) != 1 || pip["pypi/greet"] != "1.2" {
		t.Errorf("the pip layer installed %v, want greet 1.2", pip)
	}
	text, _ := cli(t, "inspect", "it-sbom")
	for _, want := range []string{"installed (deb, 1): hello 2.", "installed (pypi, 1): greet 1.2"} {
		if !strings.Contains(text, want) {
			t.Errorf("inspect does not show %q:\n%s", want, text)
		}
	}

	docs := map[string]string{}
	for format, purl := range map[string]string{"spdx": `"referenceLocator": "pkg:pypi/greet@1.2"`, "cyclonedx": `"purl": "pkg:pypi/greet@1.2"`} {
		doc, err := cli(t, "sbom", "it-sbom", "--format", format)
		if err != nil {
			t.Fatalf("sbom --format %s: %v\n%s", format, err, doc)
		}
		if err := sbomtest.Validate(format, []byte(doc)); err != nil {
			t.Errorf("the %s document does not validate: %v", format, err)
		}
		if !strings.Contains(doc, purl) || !strings.Contains(doc, "pkg:deb/debian/hello@") || !strings.Contains(doc, "pkg:deb/debian/libc6@") {
			t.Errorf("the %s document misses a package", format)
		}
		docs[format] = doc
	}

	reg := registry(t)
	// As stored: the attached document is strata sbom's. Recompressed to zstd: the
	// manifest is another, and the document names that one, its subject.
	for _, c := range []struct{ tag, format, compression string }{{"1", "spdx", "gzip"}, {"zstd", "cyclonedx", "zstd"}} {
		ref := reg + "/sbom/app:" + c.tag
		out, err = cli(t, "push", "it-sbom", ref, "--sbom", c.format, "--compression", c.compression)
		if err != nil {
			t.Fatalf("push --sbom: %v\n%s", err, out)
		}
		_, digest, _ := strings.Cut(strings.TrimSpace(out[strings.LastIndex(out, "\n"+ref)+1:]), "@")
		got := attached(t, reg+"/sbom/app@"+digest, sbomMediaTypes[c.format])
		if err := sbomtest.Validate(c.format, got); err != nil {
			t.Errorf("the attached %s document does not validate: %v", c.format, err)
		}
		if c.compression == "gzip" && strings.TrimSpace(string(got)) != strings.TrimSpace(docs[c.format]) {
			t.Errorf("the attached %s document is not the one strata sbom writes", c.format)
		}
		if !strings.Contains(string(got), digest) {
			t.Errorf("the %s document attached to %s does not name it", c.format, digest)
		}
	}
}

var sbomMediaTypes = map[string]string{"spdx": "application/spdx+json", "cyclonedx": "application/vnd.cyclonedx+json"}

// attached returns the one document of the artifact type that refers to the image.
func attached(t *testing.T, image, artifactType string) []byte {
	t.Helper()
	r, err := name.NewDigest(image, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Referrers(r)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || m.Manifests[0].ArtifactType != artifactType {
		t.Fatalf("referrers of %s: %+v", image, m.Manifests)
	}
	art, err := remote.Image(r.Context().Digest(m.Manifests[0].Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := art.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("the artifact's blobs: %v %v", layers, err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, _ := io.ReadAll(rc)
	return got
}
