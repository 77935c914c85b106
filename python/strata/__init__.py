"""strata: images as code, Modal's ``modal.Image`` API driving the ``strata`` binary.

    import strata

    image = strata.Image.debian_slim("3.13").apt_install("git").pip_install("requests==2.32.3")
    image.spec()              # the same spec the YAML and Go forms produce
    image.build(name="app")   # strata build, with progress on stderr
    image.run(["python3", "-c", "import requests"])
"""

import os as _os

from ._app import App, Function, FunctionCall
from ._cli import SUPPORTED_BUILDERS, find_strata
from ._image import Image
from ._objects import Secret, Volume
from . import exception
from .exception import (
    Error,
    ExecutionError,
    FunctionTimeoutError,
    ImageBuildError,
    InvalidError,
    NotFoundError,
    RemoteError,
    StrataNotFoundError,
    VersionError,
)

__version__ = "0.1.0"



def is_local() -> bool:
    """False inside a container that strata runs (it sets STRATA_CONTAINER there), else True."""
    return not _os.environ.get("STRATA_CONTAINER")


__all__ = [
    "App",
    "Function",
    "FunctionCall",
    "is_local",
    "Image",
    "Secret",
    "Volume",
    "exception",
    "Error",
    "ExecutionError",
    "FunctionTimeoutError",
    "ImageBuildError",
    "InvalidError",
    "NotFoundError",
    "RemoteError",
    "StrataNotFoundError",
    "VersionError",
    "SUPPORTED_BUILDERS",
    "find_strata",
]
