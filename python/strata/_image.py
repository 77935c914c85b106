"""``Image``: Modal's ``modal.Image`` API, serialised to strata's spec format and built by strata."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import PurePosixPath
from typing import Any, Callable, Collection, Iterator, Optional, Sequence, Union

from . import _cli, _function
from ._objects import Secret, Volume, _secret_keys
from .exception import ImageBuildError, InvalidError

_CONSTRUCTORS = (
    "debian_slim",
    "micromamba",
    "from_registry",
    "from_aws_ecr",
    "from_gcp_artifact_registry",
    "from_dockerfile",
    "from_scratch",
)
_MOUNT_METHODS = ("add_local_file", "add_local_dir", "add_local_python_source")

_MOUNT_ERROR = """An image tried to run a build step after using `image.add_local_*` to include local files.

Run `image.add_local_*` commands last in your image build to avoid rebuilding images with every local file change. strata will then add these files to containers on startup instead, saving build time.
If you need to run other build steps after adding local files, set `copy=True` to copy the files directly into the image, at the expense of some added build time.

Example:

my_image = (
    Image.debian_slim()
    .add_local_file("data.json", copy=True)
    .run_commands("python -m mypak")  # this now works!
)
"""

#: Modal parameters that strata's spec has no field for. Passing anything but the default
#: raises, rather than dropping the value silently.
_UNSUPPORTED = "{method}: parameter `{param}` is not supported by strata (its spec has no field for it); {fix}"


def _unsupported(method: str, param: str, fix: str = "remove it") -> InvalidError:
    return InvalidError(_UNSUPPORTED.format(method=method, param=param, fix=fix))


# --- argument checks ---------------------------------------------------------------------------


def _flatten(method: str, items: Sequence[Any]) -> list[str]:
    """Modal's *packages: strings or lists of strings, flattened."""
    out: list[str] = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, list) and all(isinstance(i, str) for i in item):
            out.extend(item)
        else:
            raise InvalidError(f"{method}: {item!r} must only contain strings")
    return out


def _no_flags(method: str, packages: list[str]) -> None:
    for p in packages:
        if p.startswith("-"):
            raise InvalidError(
                f"Package list for `Image.{method}` cannot contain other arguments; try the `extra_options` parameter instead."
            )


def _str_list(what: str, value: Any, message: Optional[str] = None) -> list[str]:
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidError(message or f"{what} must be a list of strings.")


def _check_gpu(gpu: Any) -> Optional[str]:
    """A GPU as Modal writes it ("a10g", "H100:2"); a list may hold one type only."""
    if gpu is None:
        return None
    if isinstance(gpu, list):
        if len(gpu) != 1:
            raise InvalidError(f"gpu={gpu!r}: strata takes one GPU type per step, not a list of fallbacks.")
        gpu = gpu[0]
    if not isinstance(gpu, str) or not gpu:
        raise InvalidError(f"gpu must be a string such as \"H100\" or \"a10g:2\", not {gpu!r}.")
    _, sep, count = gpu.partition(":")
    if sep and not count.isdigit():
        raise InvalidError(f"Invalid GPU count: {count}. Value must be an integer.")
    return gpu


def _check_python_version(v: Any) -> Optional[str]:
    if v is None:
        return None
    if isinstance(v, float):
        raise TypeError("The `python_version` argument should be a string, not a float.")
    if not isinstance(v, str):
        raise InvalidError(f"Python version must be specified as a string, not {type(v).__name__}")
    if not re.match(r"^3(?:\.\d{1,2}){1,2}(rc\d*)?t?$", v):
        raise InvalidError(f"Invalid Python version: {v!r}")
    return v


def _check_secrets(secrets: Optional[Collection[Secret]]) -> list[Secret]:
    if secrets is None:
        return []
    if isinstance(secrets, (str, Secret)) or not all(isinstance(s, Secret) for s in secrets):
        raise InvalidError("All secrets of an Image need to be strata.Secret instances (a list of them).")
    return list(secrets)


def _check_volumes(method: str, volumes: Optional[dict]) -> dict[str, Volume]:
    if not volumes:
        return {}
    out: dict[str, Volume] = {}
    for path, vol in volumes.items():
        if not isinstance(vol, Volume):
            raise InvalidError(f"Image.{method} only supports volumes that are strata.Volume")
        p = str(path)
        if not p.startswith("/") or str(PurePosixPath(p)) != p or ".." in PurePosixPath(p).parts:
            raise InvalidError(f"Image.{method}: volume path {p!r} must be absolute and canonical, such as \"/root/.cache\".")
        if p in ("/", "/root", "/tmp"):
            raise InvalidError(f"Image.{method}: a volume cannot be mounted at {p}; use a folder below it.")
        out[p] = vol
    return out


def _check_ignore(method: str, ignore: Any) -> Optional[list[str]]:
    """dockerignore patterns; a predicate cannot cross into a spec."""
    if ignore is None:
        return None
    if callable(ignore):
        raise _unsupported(method, "ignore", "a callable cannot be written to a spec: pass dockerignore patterns (a list of strings)")
    return _str_list(f"{method}: ignore", ignore)


def _pip_options(find_links, index_url, extra_index_url, pre, extra_options) -> dict:
    out: dict[str, Any] = {}
    for key, value in (("find_links", find_links), ("index_url", index_url), ("extra_index_url", extra_index_url)):
        if value is not None:
            out[key] = str(value)
    if pre:
        out["pre"] = True
    if extra_options:
        out["extra_options"] = str(extra_options)
    return out


def _path(p: Any) -> str:
    return os.fspath(p) if isinstance(p, os.PathLike) else str(p)


# --- Image -------------------------------------------------------------------------------------


def _layer(method: Callable) -> Callable:
    """Refuse calls on the class itself, as Modal does."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if not isinstance(self, Image):
            raise InvalidError(
                f"Image has not been constructed yet. Use one of the static factory methods prior to calling "
                f"{method.__name__} like `Image.debian_slim`, `Image.from_registry` or `Image.micromamba`."
            )
        return method(self, *args, **kwargs)

    return wrapper


class Image:
    """A container image definition: an immutable chain of steps, as ``modal.Image``.

    Every method returns a new Image. ``spec()`` is the chain in strata's spec format;
    ``build()``, ``run()`` and ``push()`` drive the strata binary.
    """

    __slots__ = ("_steps", "_objects")

    def __init__(self, *args, **kwargs):
        raise InvalidError("Use a constructor such as Image.debian_slim() to make an Image.")

    @classmethod
    def _make(cls, steps: tuple, objects: tuple) -> "Image":
        obj = object.__new__(cls)
        object.__setattr__(obj, "_steps", steps)
        object.__setattr__(obj, "_objects", objects)
        return obj

    def __setattr__(self, name, value):
        raise AttributeError("Image is immutable: every method returns a new Image.")

    def __repr__(self) -> str:
        return "Image(" + " -> ".join(m for m, _ in self._steps) + ")"

    def __eq__(self, other) -> bool:
        return isinstance(other, Image) and other._steps == self._steps

    def __hash__(self) -> int:
        return hash(self._steps)

    @staticmethod
    def _root(method: str, opts: dict, objects: Sequence = ()) -> "Image":
        return Image._make(((method, json.dumps(opts, sort_keys=True)),), tuple(objects))

    def _then(self, method: str, opts: dict, objects: Sequence = ()) -> "Image":
        return Image._make(self._steps + ((method, json.dumps(opts, sort_keys=True)),), self._objects + tuple(objects))

    def _with_layer(self, method: str, opts: dict, force_build=False, env=None, secrets=None, gpu=None, extra=()) -> "Image":
        """A step with the options every layer takes (strata's LayerOptions)."""
        secret_objs = _check_secrets(secrets)
        if force_build:
            opts["force_build"] = True
        if env:
            if not isinstance(env, dict):
                raise InvalidError(f"Image.{method}: env must be a dict of strings.")
            vals = {k: v for k, v in env.items() if v is not None}
            bad = [k for k, v in vals.items() if not isinstance(v, str) or not isinstance(k, str)]
            if bad:
                raise InvalidError(f"Image.{method}: env values must be strings. Invalid keys: {bad}")
            if vals:
                opts["env"] = vals
        if secret_objs:
            opts["secrets"] = [s.name for s in secret_objs]
        g = _check_gpu(gpu)
        if g:
            opts["gpu"] = g
        return self._then(method, opts, [*secret_objs, *extra])

    # --- constructors ------------------------------------------------------------------------

    @staticmethod
    def debian_slim(python_version: Optional[str] = None, force_build: bool = False) -> "Image":
        """Slim Debian with Python, pip and a C toolchain. strata's default Python is 3.13 (Modal's is
        the local interpreter's version)."""
        opts: dict[str, Any] = {}
        v = _check_python_version(python_version)
        if v is not None:
            if v.endswith("t"):
                raise InvalidError("Free threaded Python is not supported with Image.debian_slim")
            opts["python_version"] = v
        if force_build:
            opts["force_build"] = True
        return Image._root("debian_slim", opts)

    @staticmethod
    def micromamba(python_version: Optional[str] = None, force_build: bool = False) -> "Image":
        """The micromamba base image with Python from conda-forge."""
        opts: dict[str, Any] = {}
        v = _check_python_version(python_version)
        if v is not None:
            opts["python_version"] = v
        if force_build:
            opts["force_build"] = True
        return Image._root("micromamba", opts)

    @staticmethod
    def _registry(method: str, tag: str, secret, setup_dockerfile_commands, force_build, add_python, kwargs) -> "Image":
        if kwargs:
            if "secrets" in kwargs and method != "from_registry":
                raise TypeError("Passing a list of 'secrets' is not supported; use the singular 'secret' argument.")
            raise _unsupported(f"Image.{method}", sorted(kwargs)[0])
        if not isinstance(tag, str) or not tag:
            raise InvalidError(f"Image.{method}: tag must be an image reference such as \"python:3.13-slim\".")
        opts: dict[str, Any] = {"tag": tag}
        objects = []
        if secret is not None:
            if not isinstance(secret, Secret):
                raise InvalidError(f"Image.{method}: secret must be a strata.Secret.")
            opts["secret"] = secret.name
            objects.append(secret)
        if add_python is not None:
            opts["add_python"] = str(add_python)
        if setup_dockerfile_commands:
            opts["setup_dockerfile_commands"] = _str_list("setup_dockerfile_commands", setup_dockerfile_commands)
        if force_build:
            opts["force_build"] = True
        return Image._root(method, opts, objects)

    @staticmethod
    def from_registry(
        tag: str,
        secret: Optional[Secret] = None,
        *,
        setup_dockerfile_commands: list[str] = [],
        force_build: bool = False,
        add_python: Optional[str] = None,
        **kwargs,
    ) -> "Image":
        """Start from an image in a registry; `secret` holds REGISTRY_USERNAME and REGISTRY_PASSWORD."""
        return Image._registry("from_registry", tag, secret, setup_dockerfile_commands, force_build, add_python, kwargs)

    @staticmethod
    def from_aws_ecr(
        tag: str,
        secret: Optional[Secret] = None,
        *,
        setup_dockerfile_commands: list[str] = [],
        force_build: bool = False,
        add_python: Optional[str] = None,
        **kwargs,
    ) -> "Image":
        """Start from an image in AWS ECR; `secret` holds AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION."""
        return Image._registry("from_aws_ecr", tag, secret, setup_dockerfile_commands, force_build, add_python, kwargs)

    @staticmethod
    def from_gcp_artifact_registry(
        tag: str,
        secret: Optional[Secret] = None,
        *,
        setup_dockerfile_commands: list[str] = [],
        force_build: bool = False,
        add_python: Optional[str] = None,
        **kwargs,
    ) -> "Image":
        """Start from an image in Google Artifact Registry; `secret` holds SERVICE_ACCOUNT_JSON."""
        return Image._registry(
            "from_gcp_artifact_registry", tag, secret, setup_dockerfile_commands, force_build, add_python, kwargs
        )

    @staticmethod
    def from_dockerfile(
        path: Union[str, os.PathLike],
        *,
        force_build: bool = False,
        context_dir: Union[str, os.PathLike, None] = None,
        env: Optional[dict[str, Optional[str]]] = None,
        secrets: Optional[Collection[Secret]] = None,
        gpu: Optional[str] = None,
        add_python: Optional[str] = None,
        build_args: dict[str, str] = {},
        ignore: Union[Sequence[str], Callable, None] = None,
        target: Optional[str] = None,
    ) -> "Image":
        """Build a Dockerfile as docker build does. `ignore=None` means Modal's AUTO_DOCKERIGNORE;
        `target` (a strata addition) picks the stage."""
        opts: dict[str, Any] = {"path": _path(path)}
        if context_dir is not None:
            opts["context_dir"] = _path(context_dir)
        if build_args:
            opts["build_args"] = {str(k): str(v) for k, v in build_args.items()}
        if target:
            opts["target"] = target
        ig = _check_ignore("Image.from_dockerfile", ignore)
        if ig is not None:
            opts["ignore"] = ig
        if add_python is not None:
            opts["add_python"] = str(add_python)
        root = Image._make((), ())
        img = root._with_layer("from_dockerfile", opts, force_build, env, secrets, gpu)
        return img

    @staticmethod
    def from_scratch(force_build: bool = False) -> "Image":
        """An empty image (no Python: pip and run_function cannot follow)."""
        if force_build:
            raise _unsupported("Image.from_scratch", "force_build", "use `strata build --force-build` instead")
        return Image._root("from_scratch", {})

    @staticmethod
    def from_id(image_id: str, client: Any = None) -> "Image":
        raise InvalidError("Image.from_id is not supported: strata has no image IDs. Use Image.from_registry with a pushed image.")

    @staticmethod
    def from_name(name: str, *, environment_name: Optional[str] = None, client: Any = None) -> "Image":
        raise InvalidError("Image.from_name is not supported yet: push the image and use Image.from_registry.")

    # --- packages ----------------------------------------------------------------------------

    @_layer
    def apt_install(
        self,
        *packages: Union[str, list[str]],
        force_build: bool = False,
        env: Optional[dict[str, Optional[str]]] = None,
        secrets: Optional[Collection[Secret]] = None,
        gpu: Optional[str] = None,
    ) -> "Image":
        """Install Debian packages, in the order given."""
        pkgs = _flatten("apt_install", packages)
        if not pkgs:
            return self
        return self._with_layer("apt_install", {"packages": pkgs}, force_build, env, secrets, gpu)

    @_layer
    def pip_install(
        self,
        *packages: Union[str, list[str]],
        find_links: Optional[str] = None,
        index_url: Optional[str] = None,
        extra_index_url: Optional[str] = None,
        pre: bool = False,
        extra_options: str = "",
        force_build: bool = False,
        env: Optional[dict[str, Optional[str]]] = None,
        secrets: Optional[Collection[Secret]] = None,
        gpu: Optional[str] = None,
    ) -> "Image":
        """Install Python packages with pip. Pin versions: the key follows the requirement text."""
        pkgs = _flatten("pip_install", packages)
        if not pkgs:
            return self
        _no_flags("pip_install", pkgs)
        opts = {"packages": pkgs, **_pip_options(find_links, index_url, extra_index_url, pre, extra_options)}
        return self._with_layer("pip_install", opts, force_build, env, secrets, gpu)

    @_layer
    def pip_install_private_repos(
        self,
        *repositories: str,
        git_user: str,
        find_links: Optional[str] = None,
        index_url: Optional[str] = None,
        extra_index_url: Optional[str] = None,
        pre: bool = False,
        extra_options: str = "",
        gpu: Optional[str] = None,
        env: Optional[dict[str, Optional[str]]] = None,
        secrets: Optional[Collection[Secret]] = None,
        force_build: bool = False,
    ) -> "Image":
        """Install packages from private GitHub/GitLab repositories with GITHUB_TOKEN/GITLAB_TOKEN from secrets."""
        repos = _flatten("pip_install_private_repos", repositories)
        if not repos:
            return self
        invalid = [r for r in repos if not (r.startswith("github.com/") or r.startswith("gitlab.com/"))]
        if invalid:
            raise InvalidError(f"{len(invalid)} out of {len(repos)} given repository refs are invalid. Invalid refs: {invalid}")
        if not secrets:
            raise InvalidError(
                "No secrets provided to function. Installing private packages requires tokens to be passed via strata.Secret objects."
            )
        opts = {"repositories": repos, "git_user": git_user, **_pip_options(find_links, index_url, extra_index_url, pre, extra_options)}
        return self._with_layer("pip_install_private_repos", opts, force_build, env, secrets, gpu)

    @_layer
    def pip_install_from_requirements(
        self,
        requirements_txt: Union[str, os.PathLike],
        find_links: Optional[str] = None,
        *,
        index_url: Optional[str] = None,
        extra_index_url: Optional[str] = None,
        pre: bool = False,
        extra_options: str = "",
        force_build: bool = False,
        env: Optional[dict[str, Optional[str]]] = None,
        secrets: Optional[Collection[Secret]] = None,
        gpu: Optional[str] = None,
    ) -> "Image":
        """Install a local requirements.txt with pip."""
        opts = {"requirements_txt": _path(requirements_txt), **_pip_options(find_links, index_url, extra_index_url, pre, extra_options)}
        return self._with_layer("pip_install_from_requirements", opts, force_build, env, secrets, gpu)

    @_layer
    def pip_install_from_pyproject(
        self,
        pyproject_toml: Union[str, os.PathLike],
        optional_dependencies: list[str] = [],
        *,
        find_links: Optional[str] = None,
        index_url: Optional[str] = None,
        extra_index_url: Optional[str] = None,
        pre: bool = False,
        extra_options: str = "",
        force_build: bool = False,
        env: Optional[dict[str, Optional[str]]] = None,
        secrets: Optional[Collection[Secret]] = None,
        gpu: Optional[str] = None,
    ) -> "Image":
        """Install the [project.dependencies] (and chosen optional groups) of a local pyproject.toml."""
        opts: dict[str, Any] = {"pyproject_toml": _path(pyproject_toml)}
        if optional_dependencies:
            opts["optional_dependencies"] = _str_list("optional_dependencies", optional_dependencies)
        opts.update(_pip_options(find_links, index_url, extra_index_url, pre, extra_options))
        return self._with_layer("pip_install_from_pyproject", opts, force_build, env, secrets, gpu)

    @_layer
    def uv_pip_install(
        self,
        *packages: Union[str, list[str]],
        requirements: Optional[list[str]] = None,
        find_links: Optional[str] = None,
        index_url: Optional[str] = None,
        extra_index_url: Optional[str] = None,
        pre: bool = False,
        extra_options: str = "",
        force_build: bool = False,
        uv_version: Optional[str] = None,
        env: Optional[dict[str, Optional[str]]] = None,
        secrets: Optional[Collection[Secret]] = None,
        gpu: Optional[str] = None,
    ) -> "Image":
        """Install Python packages with uv."""
        pkgs = _flatten("uv_pip_install", packages)
        if requirements is not None and not (isinstance(requirements, list) and all(isinstance(r, (str, os.PathLike)) for r in requirements)):
            raise InvalidError("requirements must be None or a list of strings")
        if not pkgs and not requirements:
            return self
        _no_flags("uv_pip_install", pkgs)
        opts: dict[str, Any] = {}
        if pkgs:
            opts["packages"] = pkgs
        if requirements:
            opts["requirements"] = [_path(r) for r in requirements]
        if uv_version is not None:
            opts["uv_version"] = uv_version
        opts.update(_pip_options(find_links, index_url, extra_index_url, pre, extra_options))
        return self._with_layer("uv_pip_install", opts, force_build, env, secrets, gpu)

    @_layer
    def uv_sync(
        self,
        uv_project_dir: Union[str, os.PathLike] = "./",
        *,
        force_build: bool = False,
        groups: Optional[list[str]] = None,
        extras: Optional[list[str]] = None,
        frozen: bool = True,
        extra_options: str = "",
        uv_version: Optional[str] = None,
        env: Optional[dict[str, Optional[str]]] = None,
        secrets: Optional[Collection[Secret]] = None,
        gpu: Optional[str] = None,
    ) -> "Image":
        """Install a uv project's dependencies (not the project) into /.uv/.venv."""
        opts: dict[str, Any] = {}
        if _path(uv_project_dir) != "./":
            opts["uv_project_dir"] = _path(uv_project_dir)
        if groups is not None:
            opts["groups"] = _str_list("groups", groups, "Expected groups to be a list of strings")
        if extras is not None:
            opts["extras"] = _str_list("extras", extras, "Expected extras to be a list of strings")
        if not frozen:
            opts["frozen"] = False
        if extra_options:
            opts["extra_options"] = extra_options
        if uv_version is not None:
            opts["uv_version"] = uv_version
        return self._with_layer("uv_sync", opts, force_build, env, secrets, gpu)

    @_layer
    def poetry_install_from_file(
        self,
        poetry_pyproject_toml: Union[str, os.PathLike],
        poetry_lockfile: Union[str, os.PathLike, None] = None,
        *,
        ignore_lockfile: bool = False,
        force_build: bool = False,
        with_: list[str] = [],
        without: list[str] = [],
        only: list[str] = [],
        poetry_version: Optional[str] = "latest",
        old_installer: bool = False,
        env: Optional[dict[str, Optional[str]]] = None,
        secrets: Optional[Collection[Secret]] = None,
        gpu: Optional[str] = None,
    ) -> "Image":
        """Install a poetry project's dependencies. poetry_version=None installs no poetry."""
        opts: dict[str, Any] = {"poetry_pyproject_toml": _path(poetry_pyproject_toml)}
        if poetry_lockfile is not None:
            opts["poetry_lockfile"] = _path(poetry_lockfile)
        if ignore_lockfile:
            opts["ignore_lockfile"] = True
        for key, value in (("with_", with_), ("without", without), ("only", only)):
            if value:
                opts[key] = _str_list(key, value)
        if poetry_version is None:
            opts["poetry_version"] = "none"
        elif poetry_version != "latest":
            opts["poetry_version"] = poetry_version
        if old_installer:
            opts["old_installer"] = True
        return self._with_layer("poetry_install_from_file", opts, force_build, env, secrets, gpu)

    @_layer
    def micromamba_install(
        self,
        *packages: Union[str, list[str]],
        spec_file: Union[str, os.PathLike, None] = None,
        channels: list[str] = [],
        force_build: bool = False,
        env: Optional[dict[str, Optional[str]]] = None,
        secrets: Optional[Collection[Secret]] = None,
        gpu: Optional[str] = None,
    ) -> "Image":
        """Install conda packages with micromamba."""
        pkgs = _flatten("micromamba_install", packages)
        if not pkgs and spec_file is None:
            return self
        opts: dict[str, Any] = {}
        if pkgs:
            opts["packages"] = pkgs
        if spec_file is not None:
            opts["spec_file"] = _path(spec_file)
        if channels:
            opts["channels"] = _str_list("channels", channels)
        return self._with_layer("micromamba_install", opts, force_build, env, secrets, gpu)

    # --- steps -------------------------------------------------------------------------------

    @_layer
    def run_commands(
        self,
        *commands: Union[str, list[str]],
        env: Optional[dict[str, Optional[str]]] = None,
        secrets: Optional[Collection[Secret]] = None,
        volumes: Optional[dict[Union[str, PurePosixPath], Volume]] = None,
        gpu: Optional[str] = None,
        force_build: bool = False,
    ) -> "Image":
        """Run shell commands, in order, as one layer."""
        cmds = _flatten("run_commands", commands)
        if not cmds:
            return self
        vols = _check_volumes("run_commands", volumes)
        opts: dict[str, Any] = {"commands": cmds}
        if vols:
            opts["volumes"] = {p: v.name for p, v in vols.items()}
        return self._with_layer("run_commands", opts, force_build, env, secrets, gpu, extra=vols.values())

    @_layer
    def run_function(
        self,
        raw_f: Callable[..., Any],
        *,
        env: Optional[dict[str, Optional[str]]] = None,
        secrets: Optional[Collection[Secret]] = None,
        volumes: dict[Union[str, PurePosixPath], Volume] = {},
        network_file_systems: dict = {},
        gpu: Union[str, list[str], None] = None,
        cpu: Optional[float] = None,
        memory: Optional[int] = None,
        timeout: int = 3600,
        cloud: Optional[str] = None,
        region: Optional[str] = None,
        force_build: bool = False,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] = {},
        include_source: bool = True,
    ) -> "Image":
        """Run a Python function at build time with the image's python3; what it leaves in the file
        system (not in volumes) becomes the layer.

        Its cache identity is its source, the sources of the module-level functions and classes it
        uses, the module-level constants it reads, its pickled arguments and its timeout. Arguments
        are pickled now: one that cannot be pickled is an error before anything runs.
        """
        for param, value, default in (
            ("network_file_systems", network_file_systems, {}),
            ("cpu", cpu, None),
            ("memory", memory, None),
            ("cloud", cloud, None),
            ("region", region, None),
            ("include_source", include_source, True),
        ):
            if value != default:
                raise _unsupported("Image.run_function", param)
        if not isinstance(timeout, int) or timeout <= 0:
            raise InvalidError(f"Image.run_function: timeout must be a positive number of seconds, not {timeout!r}.")
        cmd = _function.command(raw_f, tuple(args), dict(kwargs), timeout)
        vols = _check_volumes("run_function", volumes)
        opts: dict[str, Any] = {"commands": [cmd]}
        if vols:
            opts["volumes"] = {p: v.name for p, v in vols.items()}
        return self._with_layer("run_commands", opts, force_build, env, secrets, gpu, extra=vols.values())

    @_layer
    def dockerfile_commands(
        self,
        *dockerfile_commands: Union[str, list[str]],
        context_files: dict[str, str] = {},
        env: Optional[dict[str, Optional[str]]] = None,
        secrets: Optional[Collection[Secret]] = None,
        gpu: Optional[str] = None,
        context_dir: Union[str, os.PathLike, None] = None,
        force_build: bool = False,
        ignore: Union[Sequence[str], Callable, None] = None,
        build_args: dict[str, str] = {},
    ) -> "Image":
        """Extend the image with Dockerfile lines (no FROM), as one layer."""
        cmds = _flatten("dockerfile_commands", dockerfile_commands)
        if not cmds:
            return self
        opts: dict[str, Any] = {"commands": cmds}
        if context_files:
            opts["context_files"] = {str(k): _path(v) for k, v in context_files.items()}
        if context_dir is not None:
            opts["context_dir"] = _path(context_dir)
        ig = _check_ignore("Image.dockerfile_commands", ignore)
        if ig is not None:
            opts["ignore"] = ig
        if build_args:
            opts["build_args"] = {str(k): str(v) for k, v in build_args.items()}
        return self._with_layer("dockerfile_commands", opts, force_build, env, secrets, gpu)

    @_layer
    def entrypoint(self, entrypoint_commands: list[str]) -> "Image":
        """Set the ENTRYPOINT."""
        cmds = _str_list("entrypoint_commands", entrypoint_commands, "entrypoint_commands must be a list of strings.")
        return self._then("entrypoint", {"entrypoint_commands": cmds})

    @_layer
    def shell(self, shell_commands: list[str]) -> "Image":
        """Set the SHELL later RUN steps use."""
        cmds = _str_list("shell_commands", shell_commands, "shell_commands must be a list of strings.")
        return self._then("shell", {"shell_commands": cmds})

    @_layer
    def cmd(self, cmd: list[str]) -> "Image":
        """Set the CMD."""
        return self._then("cmd", {"cmd": _str_list("cmd", cmd, "Image CMD must be a list of strings.")})

    @_layer
    def env(self, vars: dict[str, str]) -> "Image":
        """Set environment variables in the image."""
        if not isinstance(vars, dict):
            raise InvalidError("Image ENV variables must be a dict of strings.")
        bad = [k for k, v in vars.items() if not isinstance(v, str) or not isinstance(k, str)]
        if bad:
            raise InvalidError(f"Image ENV variables must be strings. Invalid keys: {bad}")
        return self._then("env", {"vars": dict(vars)})

    @_layer
    def workdir(self, path: Union[str, PurePosixPath]) -> "Image":
        """Set the working directory of later steps and of containers."""
        return self._then("workdir", {"path": str(path)})

    # --- local files -------------------------------------------------------------------------

    @_layer
    def add_local_file(self, local_path: Union[str, os.PathLike], remote_path: str, *, copy: bool = False) -> "Image":
        """Mount a local file at remote_path when a container starts, or bake it in with copy=True."""
        remote = str(remote_path)
        if not remote.startswith("/"):
            raise InvalidError("image.add_local_file() currently only supports absolute remote_path values")
        opts: dict[str, Any] = {"local_path": _path(local_path), "remote_path": remote}
        if copy:
            opts["copy"] = True
        return self._then("add_local_file", opts)

    @_layer
    def add_local_dir(
        self,
        local_path: Union[str, os.PathLike],
        remote_path: str,
        *,
        copy: bool = False,
        ignore: Union[Sequence[str], Callable] = [],
    ) -> "Image":
        """Mount a local folder at remote_path, or bake it in with copy=True. `ignore`: dockerignore patterns."""
        remote = str(remote_path)
        if not remote.startswith("/"):
            raise InvalidError("image.add_local_dir() currently only supports absolute remote_path values")
        opts: dict[str, Any] = {"local_path": _path(local_path), "remote_path": remote}
        if copy:
            opts["copy"] = True
        ig = _check_ignore("Image.add_local_dir", ignore)
        if ig:
            opts["ignore"] = ig
        return self._then("add_local_dir", opts)

    @_layer
    def add_local_python_source(
        self, *modules: str, copy: bool = False, ignore: Union[Sequence[str], Callable, None] = None
    ) -> "Image":
        """Make local Python modules importable at /root/<module path>. `ignore=None` (Modal's
        NON_PYTHON_FILES) keeps only *.py files. Modules are found under the working directory."""
        if not all(isinstance(m, str) for m in modules):
            raise InvalidError("Local Python modules must be specified as strings.")
        opts: dict[str, Any] = {"modules": list(modules)}
        if copy:
            opts["copy"] = True
        ig = _check_ignore("Image.add_local_python_source", ignore)
        if ig is not None:
            opts["ignore"] = ig
        return self._then("add_local_python_source", opts)

    # --- other members -----------------------------------------------------------------------

    def pipe(self, func: Callable[..., "Image"], *args, **kwargs) -> "Image":
        """Apply a reusable recipe: image.pipe(f, x) is f(image, x)."""
        return func(self, *args, **kwargs)

    @contextlib.contextmanager
    def imports(self) -> Iterator[None]:
        """Import packages that only the image has: an ImportError here is skipped locally.

        Inside a container of a strata image (where STRATA_CONTAINER is set) it is raised.
        """
        try:
            yield
        except ImportError:
            if os.environ.get("STRATA_CONTAINER"):
                raise

    def spec(self) -> dict:
        """The image in strata's spec format, as a dict that `strata spec -f` reads as JSON.

        Local paths are as given (relative ones resolve against the spec file's folder).
        """
        if not self._steps:
            raise InvalidError("No commands were provided for the image — have you tried using Image.debian_slim()?")
        mounted = False
        for method, opts in self._steps:
            if method in _MOUNT_METHODS and not json.loads(opts).get("copy"):
                mounted = True
            elif mounted:
                raise InvalidError(_MOUNT_ERROR)
        return {"image": [{method: json.loads(opts)} for method, opts in self._steps]}

    # --- driving strata ----------------------------------------------------------------------

    def _default_name(self) -> str:
        return "py-" + hashlib.sha256(json.dumps(self.spec(), sort_keys=True).encode()).hexdigest()[:16]

    def _spec_json(self) -> str:
        """The spec as the CLI reads it from standard input (`-f -`), its relative local paths
        resolving against the working directory, as Modal's do."""
        return json.dumps(self.spec())

    def _ensure_objects(self) -> None:
        secrets = [o for o in self._objects if isinstance(o, Secret)]
        volumes = [o for o in self._objects if isinstance(o, Volume)]
        if secrets:
            existing = _secret_keys()
            for s in secrets:
                s._ensure(existing)
        if volumes:
            existing_vols = _cli.lines(["volume", "ls"])
            for v in volumes:
                v._ensure(existing_vols)

    def keys(self) -> list[dict]:
        """The image's layers with their cache keys, as `strata spec --json` prints them. Nothing is built."""
        return json.loads(_cli.run(["spec", "-f", "-", "--json"], input=self._spec_json()))["layers"]

    def build(self, name: Optional[str] = None, *, force_build: bool = False, ignore_cache: bool = False, pull: bool = False) -> str:
        """Build the image into strata's store under `name` (default: one derived from the spec),
        streaming the engine's progress to stderr. Cached layers are skipped. Returns the name."""
        name = name or self._default_name()
        self._ensure_objects()
        args = ["build", "--progress", "plain", "-t", name]
        if force_build:
            args.append("--force-build")
        if ignore_cache:
            args.append("--ignore-cache")
        if pull:
            args.append("--pull")
        code, _, tail = _cli.stream(args[:1] + ["-f", "-"] + args[1:], input=self._spec_json())
        if code != 0:
            raise ImageBuildError(f"Image build for {name} failed (exit {code}):\n" + "\n".join(tail))
        return name

    def run(
        self,
        cmd: Union[str, Sequence[str]],
        *,
        name: Optional[str] = None,
        env: Optional[dict[str, str]] = None,
        secrets: Optional[Collection[Secret]] = None,
        volumes: Optional[dict[str, Volume]] = None,
        gpu: Optional[str] = None,
        workdir: Optional[str] = None,
        user: Optional[str] = None,
        capture_output: bool = False,
        check: bool = True,
        timeout: Optional[float] = None,
    ) -> subprocess.CompletedProcess:
        """Build the image (cached layers are skipped) and run cmd in a new container of it.

        cmd is an argument list, or a string run with `sh -c`. Output streams to this process's
        stdout/stderr unless capture_output. With check, a failure raises CalledProcessError.
        """
        secret_objs = _check_secrets(secrets)
        vols = _check_volumes("run", volumes)
        name = self.build(name)
        for s in secret_objs:
            s._ensure()
        for v in vols.values():
            v._ensure()
        args = ["run", name]
        for k, v in (env or {}).items():
            args += ["-e", f"{k}={v}"]
        for s in secret_objs:
            args += ["--secret", s.name]
        for p, v in vols.items():
            args += ["-v", f"{v.name}:{p}"]
        if gpu:
            args += ["--gpus", _check_gpu(gpu)]
        if workdir:
            args += ["-w", workdir]
        if user:
            args += ["-u", user]
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        full = [_cli.strata_bin(), *args, "--", *argv]
        return subprocess.run(full, capture_output=capture_output, text=True, check=check, timeout=timeout)

    def push(
        self, ref: str, *, name: Optional[str] = None, compression: Optional[str] = None, media_types: Optional[str] = None
    ) -> str:
        """Build the image and push it to the registry reference `ref`, streaming progress. Returns ref."""
        name = self.build(name)
        args = ["push", name, ref]
        if compression:
            args += ["--compression", compression]
        if media_types:
            args += ["--media-types", media_types]
        code, out, tail = _cli.stream(args)
        if out:
            sys.stdout.write(out)
        if code != 0:
            raise ImageBuildError(f"Pushing {name} to {ref} failed (exit {code}):\n" + "\n".join(tail))
        return ref
