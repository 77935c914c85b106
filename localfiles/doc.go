// Package localfiles lists and hashes the local files that images copy or mount: it walks
// trees with dockerignore-style patterns and digests file contents in parallel, reusing the
// digests of files that have not changed since the last run.
package localfiles
