"""Secrets and volumes, backed by strata's secret and volume stores (`strata secret`, `strata volume`)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from typing import Optional, Union

from . import _cli
from .exception import InvalidError, NotFoundError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidError(
            f"Invalid {kind} name {name!r}: use letters, digits, '.', '_' and '-', starting with a letter or digit."
        )
    return name


class Secret:
    """A named set of environment variables, as ``modal.Secret``.

    Build steps and runs that name a secret get its keys as environment; strata keeps the
    values out of images, cache keys and logs. Secrets made from values in Python
    (``from_dict``, ``from_dotenv``) are created in strata's store, when an image that uses
    them is built or run, under a name derived from a hash of their contents.
    """

    __slots__ = ("_name", "_values", "_required_keys")

    def __init__(self, *args, **kwargs):
        raise InvalidError("Use Secret.from_name, Secret.from_dict or Secret.from_dotenv to make a Secret.")

    @classmethod
    def _new(cls, name: str, values: Optional[dict[str, str]], required_keys=()) -> "Secret":
        obj = object.__new__(cls)
        object.__setattr__(obj, "_name", name)
        object.__setattr__(obj, "_values", dict(values) if values is not None else None)
        object.__setattr__(obj, "_required_keys", tuple(required_keys))
        return obj

    def __setattr__(self, name, value):
        raise AttributeError("Secret is immutable")

    @property
    def name(self) -> str:
        """The name of the secret in strata's store."""
        return self._name

    def __repr__(self) -> str:  # keys only, never values
        if self._values is None:
            return f"Secret.from_name({self._name!r})"
        return f"Secret({self._name!r}, keys={sorted(self._values)})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and other._name == self._name

    def __hash__(self) -> int:
        return hash(("Secret", self._name))

    @staticmethod
    def from_name(name: str, *, environment_name: Optional[str] = None, required_keys: list[str] = []) -> "Secret":
        """Reference a secret made with `strata secret create NAME KEY=VALUE...`.

        It must exist when an image that uses it is built or run; `required_keys` are checked then.
        """
        if environment_name is not None:
            raise InvalidError("Secret.from_name: `environment_name` is not supported: strata has one local store.")
        return Secret._new(_check_name("Secret", name), None, required_keys)

    @staticmethod
    def from_dict(env_dict: dict[str, Union[str, None]] = {}) -> "Secret":
        """A secret of these values; None values are left out, as Modal does."""
        if not isinstance(env_dict, dict):
            raise InvalidError("Secret.from_dict: env_dict must be a dict of strings to strings.")
        values = {k: v for k, v in env_dict.items() if v is not None}
        bad = [k for k, v in values.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise InvalidError(f"Secret.from_dict: keys and values must be strings. Invalid keys: {bad}")
        return Secret._new(_content_name("py-dict", values), values)

    @staticmethod
    def from_dotenv(path: Union[str, os.PathLike, None] = None, *, filename: str = ".env") -> "Secret":
        """A secret of the KEY=VALUE lines of a .env file, as Modal's.

        `path` is a folder, or a file whose folder is used (so `from_dotenv(__file__)` reads the
        .env beside the calling module); the default is the working directory.
        """
        folder = os.getcwd() if path is None else os.fspath(path)
        if os.path.isfile(folder):
            folder = os.path.dirname(folder)
        dotenv = os.path.join(folder, filename)
        if os.environ.get("STRATA_CONTAINER") and not os.path.isfile(dotenv):
            # An app function's module, imported again in its container, where the .env is
            # not: the secret's values reached the container as environment already.
            return Secret._new("py-dotenv-in-container", {})
        if not os.path.isfile(dotenv):
            raise NotFoundError(f"Secret.from_dotenv: {dotenv} does not exist.")
        values = _parse_dotenv(dotenv)
        return Secret._new(_content_name("py-dotenv", values), values)

    def _ensure(self, existing: Optional[dict[str, list[str]]] = None) -> None:
        """Create the secret in strata's store if it is made from values, or check it exists."""
        existing = _secret_keys() if existing is None else existing
        if self._values is None:
            if self._name not in existing:
                raise NotFoundError(
                    f"Secret {self._name!r} not found: create it with `strata secret create {self._name} KEY=VALUE...`."
                )
            missing = [k for k in self._required_keys if k not in existing[self._name]]
            if missing:
                raise NotFoundError(f"Secret {self._name!r} is missing required keys: {', '.join(missing)}")
            return
        if self._name in existing:
            return  # the name is a hash of the contents: same name, same values
        _create_secret(self._name, self._values)


def _content_name(prefix: str, values: dict[str, str]) -> str:
    for k, v in values.items():
        if not _KEY_RE.match(k):
            raise InvalidError(f"Secret key {k!r} is not a valid environment variable name.")
        if "\r" in v or "\0" in v:
            raise InvalidError(f"Secret value of {k} holds a carriage return or NUL, which strata's secret store cannot hold.")
    digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()
    return f"{prefix}-{digest[:24]}"


def _parse_dotenv(path: str) -> dict[str, str]:
    """Parse a .env file with strata's rules (`strata secret create --from-dotenv`)."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("export "):
                line = line[len("export "):]
            k, sep, v = line.partition("=")
            if not sep:
                raise InvalidError(f"{path}:{n}: not KEY=VALUE")
            k, v = k.strip(), v.strip()
            if len(v) >= 2 and v[0] in "\"'" and v[-1] == v[0]:
                v = v[1:-1]
                if raw.strip().partition("=")[2].strip()[0] == '"':
                    v = re.sub(r'\\(n|"|\\)', lambda m: {"n": "\n", '"': '"', "\\": "\\"}[m.group(1)], v)
            elif " #" in v:
                v = v[: v.index(" #")].strip()
            out[k] = v
    return out


def _dotenv_quote(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _create_secret(name: str, values: dict[str, str]) -> None:
    # Values go through a private file, never on the command line where `ps` shows them.
    fd, path = tempfile.mkstemp(prefix="strata-secret-", suffix=".env")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for k, v in sorted(values.items()):
                f.write(f"{k}={_dotenv_quote(v)}\n")
        _cli.run(["secret", "create", name, "--from-dotenv", path])
    finally:
        os.unlink(path)


def _secret_keys() -> dict[str, list[str]]:
    """Secrets in strata's store and their keys (`strata secret ls`)."""
    out: dict[str, list[str]] = {}
    for line in _cli.lines(["secret", "ls"])[1:]:  # the first line is the header
        parts = line.split(None, 1)
        out[parts[0]] = parts[1].replace(",", " ").split() if len(parts) > 1 else []
    return out


class Volume:
    """A named volume in strata's store, as ``modal.Volume``: a folder that persists outside images."""

    __slots__ = ("_name", "_create_if_missing")

    def __init__(self, *args, **kwargs):
        raise InvalidError("Use Volume.from_name to make a Volume.")

    def __setattr__(self, name, value):
        raise AttributeError("Volume is immutable")

    @staticmethod
    def from_name(
        name: str,
        *,
        environment_name: Optional[str] = None,
        create_if_missing: bool = False,
        version: Optional[int] = None,
    ) -> "Volume":
        """Reference the volume NAME; with create_if_missing it is created when first needed."""
        if environment_name is not None:
            raise InvalidError("Volume.from_name: `environment_name` is not supported: strata has one local store.")
        if version is not None:
            raise InvalidError("Volume.from_name: `version` is not supported: strata volumes are plain folders.")
        obj = object.__new__(Volume)
        object.__setattr__(obj, "_name", _check_name("Volume", name))
        object.__setattr__(obj, "_create_if_missing", bool(create_if_missing))
        return obj

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"Volume.from_name({self._name!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Volume) and other._name == self._name

    def __hash__(self) -> int:
        return hash(("Volume", self._name))

    def _ensure(self, existing: Optional[list[str]] = None) -> None:
        existing = _cli.lines(["volume", "ls"]) if existing is None else existing
        if self._name in existing:
            return
        if not self._create_if_missing:
            raise NotFoundError(
                f"Volume {self._name!r} not found: create it with `strata volume create {self._name}`, "
                f"or use Volume.from_name({self._name!r}, create_if_missing=True)."
            )
        _cli.run(["volume", "create", self._name])
