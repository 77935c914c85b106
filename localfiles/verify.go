package localfiles

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/strata-build/strata/spec"
)

// OpenVerified opens a listed file for reading; at its end, the read fails if the content
// does not have the digest it was hashed to (and keyed with) when the build was planned.
func OpenVerified(f spec.ContextFile) (io.ReadCloser, error) {
	r, err := os.Open(f.Source)
	if err != nil {
		return nil, err
	}
	return &verified{f: r, file: f, h: sha256.New()}, nil
}

type verified struct {
	f    *os.File
	file spec.ContextFile
	h    hash.Hash
}

func (v *verified) Read(p []byte) (int, error) {
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF && v.file.Digest != "" && "sha256:"+hex.EncodeToString(v.h.Sum(nil)) != v.file.Digest {
		return n, fmt.Errorf("%s changed after the build was planned; run the build again", v.file.Source)
	}
	return n, err
}

func (v *verified) Close() error { return v.f.Close() }
