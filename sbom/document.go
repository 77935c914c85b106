package sbom

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Image is what a document describes: an image and its packages.
type Image struct {
	// Name is the image's name; Digest its manifest digest (sha256:...).
	Name   string
	Digest string
	// Created is the document's creation time (an image's, for a reproducible document).
	Created time.Time
	// Tool is the name and version of what made the document ("strata 0.9").
	Tool     string
	Packages []Package
}

// Media types of the two documents, as registries and OCI referrers name them.
const (
	MediaTypeSPDX      = "application/spdx+json"
	MediaTypeCycloneDX = "application/vnd.cyclonedx+json"
)

// Formats are the document formats, by the names the CLI takes.
var Formats = map[string]string{"spdx": MediaTypeSPDX, "cyclonedx": MediaTypeCycloneDX}

// Document writes the image's packages in a format of Formats.
func Document(format string, img Image) ([]byte, error) {
	switch format {
	case "spdx":
		return SPDX(img)
	case "cyclonedx":
		return CycloneDX(img)
	}
	return nil, fmt.Errorf("unknown SBOM format %q: use spdx or cyclonedx", format)
}

// PURL is a package's package URL (github.com/package-url/purl-spec).
func PURL(p Package) string {
	var s string
	switch p.Type {
	case Deb:
		s = "pkg:deb/debian/" + escape(p.Name) + "@" + escape(p.Version)
		if p.Arch != "" {
			s += "?arch=" + escape(p.Arch)
		}
	case PyPI:
		// The purl spec's pypi names: lowercased, '_' as '-' (dots stay).
		s = "pkg:pypi/" + escape(strings.ReplaceAll(strings.ToLower(p.Name), "_", "-")) + "@" + escape(p.Version)
	case Conda:
		s = "pkg:conda/" + escape(p.Name) + "@" + escape(p.Version)
		var q []string // qualifiers, sorted by key
		for _, kv := range [][2]string{{"build", p.Build}, {"channel", p.Channel}, {"subdir", p.Subdir}} {
			if kv[1] != "" {
				q = append(q, kv[0]+"="+escape(kv[1]))
			}
		}
		if len(q) > 0 {
			s += "?" + strings.Join(q, "&")
		}
	default:
		s = "pkg:generic/" + escape(p.Name) + "@" + escape(p.Version)
	}
	return s
}

// escape percent-encodes all but the characters a purl component may hold as they are.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-_~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// uuid is a name-based UUID (RFC 9562 version 8, from sha256) of what the document says
// and in which format: the same image, name and tool always get the same document, and
// two different documents never share a namespace.
func uuid(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	u := sum[:16]
	u[6] = u[6]&0x0f | 0x80
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func imageName(img Image) string {
	if img.Name != "" {
		return img.Name
	}
	return img.Digest
}

// SPDX writes an SPDX 2.3 JSON document: the image as a CONTAINER package that CONTAINS
// each of its packages, each with its purl.
func SPDX(img Image) ([]byte, error) {
	type extRef struct {
		Category string `json:"referenceCategory"`
		Type     string `json:"referenceType"`
		Locator  string `json:"referenceLocator"`
	}
	type pkg struct {
		SPDXID           string   `json:"SPDXID"`
		Name             string   `json:"name"`
		VersionInfo      string   `json:"versionInfo,omitempty"`
		DownloadLocation string   `json:"downloadLocation"`
		FilesAnalyzed    bool     `json:"filesAnalyzed"`
		Purpose          string   `json:"primaryPackagePurpose,omitempty"`
		Comment          string   `json:"comment,omitempty"`
		ExternalRefs     []extRef `json:"externalRefs,omitempty"`
	}
	type rel struct {
		Element string `json:"spdxElementId"`
		Type    string `json:"relationshipType"`
		Related string `json:"relatedSpdxElement"`
	}
	doc := struct {
		SPDXVersion       string `json:"spdxVersion"`
		DataLicense       string `json:"dataLicense"`
		SPDXID            string `json:"SPDXID"`
		Name              string `json:"name"`
		DocumentNamespace string `json:"documentNamespace"`
		CreationInfo      struct {
			Created  string   `json:"created"`
			Creators []string `json:"creators"`
		} `json:"creationInfo"`
		Packages      []pkg `json:"packages"`
		Relationships []rel `json:"relationships"`
	}{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              imageName(img),
		DocumentNamespace: "urn:uuid:" + uuid(img.Digest, img.Name, img.Tool, fmt.Sprint(len(img.Packages)), "spdx"),
	}
	doc.CreationInfo.Created = img.Created.UTC().Format(time.RFC3339)
	doc.CreationInfo.Creators = []string{"Tool: " + strings.ReplaceAll(img.Tool, " ", "-")}
	doc.Packages = append(doc.Packages, pkg{SPDXID: "SPDXRef-Image", Name: imageName(img), VersionInfo: img.Digest, DownloadLocation: "NOASSERTION", Purpose: "CONTAINER"})
	doc.Relationships = append(doc.Relationships, rel{"SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image"})
	for i, p := range img.Packages {
		id := fmt.Sprintf("SPDXRef-Package-%s-%d", p.Type, i+1)
		sp := pkg{SPDXID: id, Name: p.Name, VersionInfo: p.Version, DownloadLocation: "NOASSERTION", Purpose: "LIBRARY",
			ExternalRefs: []extRef{{"PACKAGE-MANAGER", "purl", PURL(p)}}}
		if p.Path != "" {
			sp.Comment = "installed in " + p.Path
		}
		doc.Packages = append(doc.Packages, sp)
		doc.Relationships = append(doc.Relationships, rel{"SPDXRef-Image", "CONTAINS", id})
	}
	return json.MarshalIndent(doc, "", "  ")
}

// CycloneDX writes a CycloneDX 1.6 JSON document: the image as the container component of
// the metadata, its packages as library components with their purls.
func CycloneDX(img Image) ([]byte, error) {
	type prop struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	type component struct {
		Type       string `json:"type"`
		BOMRef     string `json:"bom-ref,omitempty"`
		Name       string `json:"name"`
		Version    string `json:"version,omitempty"`
		PURL       string `json:"purl,omitempty"`
		Properties []prop `json:"properties,omitempty"`
	}
	tool, version, _ := strings.Cut(img.Tool, " ")
	type doc struct {
		BOMFormat    string `json:"bomFormat"`
		SpecVersion  string `json:"specVersion"`
		SerialNumber string `json:"serialNumber"`
		Version      int    `json:"version"`
		Metadata     struct {
			Timestamp string `json:"timestamp"`
			Tools     struct {
				Components []component `json:"components"`
			} `json:"tools"`
			Component component `json:"component"`
		} `json:"metadata"`
		Components []component `json:"components"`
	}
	d := doc{BOMFormat: "CycloneDX", SpecVersion: "1.6", SerialNumber: "urn:uuid:" + uuid(img.Digest, img.Name, img.Tool, fmt.Sprint(len(img.Packages)), "cyclonedx"), Version: 1, Components: []component{}}
	d.Metadata.Timestamp = img.Created.UTC().Format(time.RFC3339)
	d.Metadata.Tools.Components = []component{{Type: "application", Name: tool, Version: version}}
	d.Metadata.Component = component{Type: "container", BOMRef: "image", Name: imageName(img), Version: img.Digest}
	seen := map[string]bool{}
	for _, p := range img.Packages {
		c := component{Type: "library", Name: p.Name, Version: p.Version, PURL: PURL(p)}
		// bom-refs are unique: the same distribution may be installed in two places.
		c.BOMRef = c.PURL
		if p.Path != "" {
			c.Properties = []prop{{"strata:path", p.Path}}
			if seen[c.BOMRef] {
				c.BOMRef += "#" + p.Path
			}
		}
		seen[c.BOMRef] = true
		d.Components = append(d.Components, c)
	}
	return json.MarshalIndent(d, "", "  ")
}
