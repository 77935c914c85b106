package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// keyInput is the canonical form hashed into a layer's cache key: its encoding/json bytes.
// Anything that changes what a build step produces is here; nothing else is (no local paths,
// mtimes, force flags, secret values or runtime mounts). encoding/json writes an embedded
// struct's fields in place, so these are the fields of keyHead, then context, then keyTail's.
type keyInput struct {
	keyHead
	Context contextList `json:"context,omitempty"`
	keyTail
}

type keyHead struct {
	Builder      string        `json:"builder"`
	Parent       string        `json:"parent"`
	Escape       string        `json:"escape,omitempty"`
	Base         *Base         `json:"base,omitempty"`
	Instructions []Instruction `json:"instructions"`
}

type keyTail struct {
	Artifacts  []Artifact    `json:"artifacts,omitempty"`
	Env        []KV          `json:"env,omitempty"`
	Secrets    []string      `json:"secrets,omitempty"`
	BuildArgs  []KV          `json:"build_args,omitempty"`
	GlobalArgs []KV          `json:"global_args,omitempty"`
	Images     []ImageRef    `json:"images,omitempty"`
	Remote     []RemoteRef   `json:"remote,omitempty"`
	GPU        *GPU          `json:"gpu,omitempty"`
	Volumes    []VolumeMount `json:"volumes,omitempty"`
	Function   *FunctionRef  `json:"function,omitempty"`
	Epoch      *int64        `json:"source_date_epoch,omitempty"`
}

// sum is the sha256 of in's encoding/json bytes (a test holds it to that), with the context
// written by contextList and hashed as it is: through encoding/json, a Marshaler's megabyte
// would be checked again, byte by byte, and copied twice.
func (in *keyInput) sum() [sha256.Size]byte {
	head, err := json.Marshal(in.keyHead)
	if err != nil {
		// Every field is a plain string, number or slice of them.
		panic("spec: encoding a cache key: " + err.Error())
	}
	tail, err := json.Marshal(in.keyTail)
	if err != nil {
		panic("spec: encoding a cache key: " + err.Error())
	}
	h := sha256.New()
	h.Write(head[:len(head)-1]) // without its }
	if len(in.Context) > 0 {
		h.Write([]byte(`,"context":`))
		h.Write(in.Context.appendJSON(nil))
	}
	if len(tail) > 2 {
		h.Write([]byte{','})
		h.Write(tail[1:]) // without its {
	} else {
		h.Write([]byte{'}'})
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// ComputeKey returns the layer's cache key: the sha256 of a canonical encoding of the builder
// version, the parent's key and the layer's own inputs. Keys chain, so a change to a layer
// changes its key and every later key, and never an earlier one.
func (l *Layer) ComputeKey(builder, parent string) string {
	ctx := l.Context
	byPath := func(a, b ContextFile) int { return strings.Compare(a.Path, b.Path) }
	if !slices.IsSortedFunc(ctx, byPath) { // a listing is sorted already
		ctx = slices.Clone(ctx)
		slices.SortFunc(ctx, byPath)
	}
	secrets := append([]string(nil), l.Secrets...)
	sort.Strings(secrets)
	base := l.Base
	if base != nil && base.Digest != "" {
		// As BuildKit: a resolved image is keyed by its content, not by the name it was found by.
		b := *base
		b.Ref = ""
		base = &b
	}
	images := make([]ImageRef, len(l.Images))
	for i, im := range l.Images {
		images[i] = im
		if im.Digest != "" {
			images[i].Ref = ""
		}
	}
	artifacts := make([]Artifact, len(l.Artifacts))
	for i, a := range l.Artifacts {
		a.URL = "" // a mirror serves the same bytes: the digest says which
		artifacts[i] = a
	}
	in := keyInput{
		keyHead: keyHead{
			Builder:      builder,
			Parent:       parent,
			Escape:       l.Escape,
			Base:         base,
			Instructions: l.Instructions,
		},
		Context: ctx,
		keyTail: keyTail{
			Artifacts:  artifacts,
			Env:        l.Env,
			Secrets:    secrets,
			BuildArgs:  l.BuildArgs,
			GlobalArgs: l.GlobalArgs,
			Images:     images,
			Remote:     l.Remote,
			GPU:        l.GPU,
			Volumes:    l.Volumes,
			Function:   l.Function,
			Epoch:      l.SourceDateEpoch,
		},
	}
	sum := in.sum()
	return "sha256:" + hex.EncodeToString(sum[:])
}

// contextList is a layer's files as its key encodes them: the bytes encoding/json writes for
// []ContextFile (a test holds it to that), written directly. A 10,000-file context is a
// megabyte of JSON, which encoding/json took 30 ms to write and hash, and this takes 4.
type contextList []ContextFile

func (c contextList) MarshalJSON() ([]byte, error) {
	if c == nil {
		return []byte("null"), nil
	}
	return c.appendJSON(nil), nil
}

func (c contextList) appendJSON(b []byte) []byte {
	b = slices.Grow(b, len(c)*128)
	b = append(b, '[')
	for i := range c {
		f := &c[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"path":`...)
		b = appendJSONString(b, f.Path)
		b = append(b, `,"mode":`...)
		b = strconv.AppendUint(b, uint64(f.Mode), 10)
		if f.Link != "" {
			b = append(b, `,"link":`...)
			b = appendJSONString(b, f.Link)
		}
		if f.Digest != "" {
			b = append(b, `,"digest":`...)
			b = appendJSONString(b, f.Digest)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendJSONString appends s as encoding/json writes a string (with its HTML escaping): <, >
// and & and control characters as \u00XX (but \b \f \n \r \t), invalid UTF-8 as \ufffd,
// and U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
