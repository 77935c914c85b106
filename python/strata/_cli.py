"""Finding and driving the ``strata`` binary.

The package never reads strata's store itself: every operation is a ``strata`` command.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
from typing import Iterable, Optional, Sequence

from .exception import ExecutionError, StrataNotFoundError, VersionError

#: The builder versions (``strata version``) whose spec format this package writes.
SUPPORTED_BUILDERS = ("2026.12",)

_INSTALL_HINT = (
    "Build it from a strata checkout with `CGO_ENABLED=0 go build -o /usr/local/bin/ ./cmd/...` "
    "(the strata command and strata-core beside it), or point STRATA_BIN at a strata binary."
)

_checked: dict[str, str] = {}


def find_strata() -> str:
    """Return the path of the strata binary: STRATA_BIN if set, else `strata` on PATH."""
    env = os.environ.get("STRATA_BIN")
    if env:
        if not os.path.isfile(env):
            raise StrataNotFoundError(f"STRATA_BIN={env} does not exist. {_INSTALL_HINT}")
        if not os.access(env, os.X_OK):
            raise StrataNotFoundError(f"STRATA_BIN={env} is not executable: chmod +x it.")
        return env
    found = shutil.which("strata")
    if not found:
        raise StrataNotFoundError(f"No `strata` binary on PATH and STRATA_BIN is not set. {_INSTALL_HINT}")
    return found


def builder_version(path: str) -> str:
    """Return the builder version that the binary at path prints (`strata version`)."""
    try:
        out = subprocess.run([path, "version"], capture_output=True, text=True, timeout=60)
    except OSError as e:
        raise StrataNotFoundError(f"cannot run {path}: {e}. {_INSTALL_HINT}") from e
    words = out.stdout.split()
    if out.returncode != 0 or len(words) != 3 or words[:2] != ["strata", "builder"]:
        raise VersionError(
            f"{path} does not look like strata: `{path} version` printed {out.stdout.strip()!r}"
            f"{' ' + out.stderr.strip() if out.stderr.strip() else ''} (exit {out.returncode}), "
            f"not 'strata builder VERSION'. {_INSTALL_HINT}"
        )
    return words[2]


def strata_bin() -> str:
    """Return a strata binary whose builder version this package supports, checked once."""
    path = find_strata()
    if path not in _checked:
        version = builder_version(path)
        if version not in SUPPORTED_BUILDERS:
            raise VersionError(
                f"{path} is strata builder {version}, but this Python package writes specs for "
                f"builder {', '.join(SUPPORTED_BUILDERS)}. Install the strata binary from the same "
                f"checkout as this package (python/ and cmd/ of one commit), or set STRATA_BIN "
                f"to a matching one."
            )
        _checked[path] = version
    return path


def run(args: Sequence[str], *, input: Optional[str] = None, timeout: Optional[float] = None) -> str:
    """Run `strata ARGS` and return its standard output; raise ExecutionError on failure."""
    cmd = [strata_bin(), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout)
    if out.returncode != 0:
        raise ExecutionError(f"`strata {' '.join(args)}` failed (exit {out.returncode}): {out.stderr.strip()}")
    return out.stdout


def stream(args: Sequence[str], *, input: Optional[str] = None, tail: int = 40) -> tuple[int, str, list[str]]:
    """Run `strata ARGS` with input on its standard input, copying its standard error
    (progress) to sys.stderr as it comes.

    Returns the exit code, the standard output, and the last `tail` lines of standard error.
    """
    cmd = [strata_bin(), *args]
    last: collections.deque[str] = collections.deque(maxlen=tail)
    stdin = subprocess.PIPE if input is not None else subprocess.DEVNULL
    with subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1) as p:
        assert p.stderr is not None and p.stdout is not None
        if p.stdin is not None:
            p.stdin.write(input or "")
            p.stdin.close()
        for line in p.stderr:
            last.append(line.rstrip("\n"))
            sys.stderr.write(line)
            sys.stderr.flush()
        stdout = p.stdout.read()
        code = p.wait()
    return code, stdout, list(last)


def lines(args: Iterable[str]) -> list[str]:
    """Run `strata ARGS` and return its non-empty output lines."""
    return [l for l in run(list(args)).splitlines() if l.strip()]
