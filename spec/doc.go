// Package spec is strata's image IR: an image is a chain of layers, one per chain method, each
// holding typed Dockerfile-level instructions and the inputs that make its cache key.
package spec
