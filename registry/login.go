package registry

import (
	"context"
	"fmt"
	"net/http"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Login checks a username and password (or token) against a registry and, if it accepts
// them, stores them in the user's docker config (or its credential helper), where docker,
// podman, crane and strata's own pulls and pushes find them.
func (c *Client) Login(ctx context.Context, registry, username, password string) error {
	reg, err := c.registry(registry)
	if err != nil {
		return err
	}
	if err := c.check(ctx, reg, &authn.Basic{Username: username, Password: password}); err != nil {
		return err
	}
	cf, err := config.Load(config.Dir())
	if err != nil {
		return fmt.Errorf("reading the docker config in %s: %w", config.Dir(), err)
	}
	addr := serverAddress(reg)
	if err := cf.GetCredentialsStore(addr).Store(types.AuthConfig{Username: username, Password: password, ServerAddress: addr}); err != nil {
		return fmt.Errorf("storing the credentials for %s: %w", addr, err)
	}
	return cf.Save()
}

// Logout removes a registry's credentials from the user's docker config.
func (c *Client) Logout(registry string) error {
	reg, err := c.registry(registry)
	if err != nil {
		return err
	}
	cf, err := config.Load(config.Dir())
	if err != nil {
		return err
	}
	addr := serverAddress(reg)
	if _, ok := cf.AuthConfigs[addr]; !ok && cf.CredentialsStore == "" && cf.CredentialHelpers[addr] == "" {
		return fmt.Errorf("not logged in to %s", registry)
	}
	if err := cf.GetCredentialsStore(addr).Erase(addr); err != nil {
		return err
	}
	return cf.Save()
}

func (c *Client) registry(s string) (name.Registry, error) {
	var opts []name.Option
	if c.insecure(s) {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(s, opts...)
	if err != nil {
		return name.Registry{}, fmt.Errorf("%q is not a registry host: %w", s, err)
	}
	return reg, nil
}

// serverAddress is the key docker's config keeps a registry's credentials under.
func serverAddress(reg name.Registry) string {
	if reg.RegistryStr() == name.DefaultRegistry {
		return authn.DefaultAuthKey
	}
	return reg.RegistryStr()
}

// check asks the registry's API root with the credentials, through the token exchange if
// the registry uses one, as docker login does.
func (c *Client) check(ctx context.Context, reg name.Registry, auth authn.Authenticator) error {
	base, err := c.transport(reg)
	if err != nil {
		return err
	}
	tr, err := transport.NewWithContext(ctx, reg, auth, base, nil)
	if err != nil {
		return Explain(err, reg.RegistryStr())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s/v2/", reg.Scheme(), reg.RegistryStr()), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return Explain(err, reg.RegistryStr())
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return Explain(err, reg.RegistryStr())
	}
	return nil
}
