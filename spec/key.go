package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sort"
	"strings"
)

// keyInput is the canonical form hashed into a layer's cache key. Anything that changes what
// a build step produces is here; nothing else is (no local paths, mtimes, force flags, secret
// values or runtime mounts).
type keyInput struct {
	Builder      string        `json:"builder"`
	Parent       string        `json:"parent"`
	Escape       string        `json:"escape,omitempty"`
	Base         *Base         `json:"base,omitempty"`
	Instructions []Instruction `json:"instructions"`
	Context      []ContextFile `json:"context,omitempty"`
	Artifacts    []Artifact    `json:"artifacts,omitempty"`
	Env          []KV          `json:"env,omitempty"`
	Secrets      []string      `json:"secrets,omitempty"`
	BuildArgs    []KV          `json:"build_args,omitempty"`
	GlobalArgs   []KV          `json:"global_args,omitempty"`
	Images       []ImageRef    `json:"images,omitempty"`
	Remote       []RemoteRef   `json:"remote,omitempty"`
	GPU          *GPU          `json:"gpu,omitempty"`
	Volumes      []VolumeMount `json:"volumes,omitempty"`
	Function     *FunctionRef  `json:"function,omitempty"`
	Epoch        *int64        `json:"source_date_epoch,omitempty"`
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
		Builder:      builder,
		Parent:       parent,
		Escape:       l.Escape,
		Base:         base,
		Instructions: l.Instructions,
		Context:      ctx,
		Artifacts:    artifacts,
		Env:          l.Env,
		Secrets:      secrets,
		BuildArgs:    l.BuildArgs,
		GlobalArgs:   l.GlobalArgs,
		Images:       images,
		Remote:       l.Remote,
		GPU:          l.GPU,
		Volumes:      l.Volumes,
		Function:     l.Function,
		Epoch:        l.SourceDateEpoch,
	}
	b, err := json.Marshal(in)
	if err != nil {
		// Every field is a plain string, number or slice of them.
		panic("spec: encoding a cache key: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
