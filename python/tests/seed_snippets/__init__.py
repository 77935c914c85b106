"""The seed's snippets (../shared/reference/seed-modal-images.md), written the way the seed
writes them, with `import strata as modal`.

These machines reach neither PyPI, GitHub nor Docker Hub, so stand-ins on 127.0.0.1 replace
them (integration/pyclient_test.go's seedStandIns serves them). Where a snippet names one of
those places, it names the stand-in instead, through the constants below, and says so in a
comment. uv and micromamba are test doubles that record their arguments; the GPU is a CDI
spec that grants a harmless device node. The package is mounted into the containers of its
app functions, as Modal mounts a function's package: there the constants are not needed, and
default to addresses that nothing reaches.
"""

import os

#: A PEP 503 index of stand-in wheels, for PyPI.
INDEX = os.environ.get("STRATA_SEED_INDEX", "http://127.0.0.1:9/simple")
#: A git server, for https://github.com.
GIT = os.environ.get("STRATA_SEED_GIT", "http://127.0.0.1:9")
#: A registry, for Docker Hub.
REGISTRY = os.environ.get("STRATA_SEED_REGISTRY", "127.0.0.1:9")
#: A registry that demands a password, for a private registry and for AWS ECR.
PRIVATE = os.environ.get("STRATA_SEED_PRIVATE", "127.0.0.1:9")
