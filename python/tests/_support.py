"""Shared helpers of the tests: finding strata, fixtures for local files."""

import json
import os
import shutil
import subprocess
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def strata_or_skip(test: unittest.TestCase) -> str:
    """The strata binary (STRATA_BIN or PATH), or skip the test saying how to run it."""
    path = os.environ.get("STRATA_BIN") or shutil.which("strata")
    if not path:
        test.skipTest(
            "no strata binary: set STRATA_BIN (cd /work/main && CGO_ENABLED=0 go build -o /tmp/strata-py/ ./cmd/...) "
            "or put strata on PATH"
        )
    return path


def spec_keys(strata: str, spec_path: str) -> list:
    """(method, key) of each layer, from `strata spec -f FILE --json`."""
    out = subprocess.run([strata, "spec", "-f", spec_path, "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError(f"strata spec -f {spec_path} failed: {out.stderr}")
    return [(l["method"], l["key"]) for l in json.loads(out.stdout)["layers"]]


def write(folder: str, rel: str, text: str) -> str:
    path = os.path.join(folder, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    return path


def make_fixtures() -> str:
    """A folder holding every local file the method chains read."""
    d = tempfile.mkdtemp(prefix="strata-py-test-")
    write(d, "requirements.txt", "six==1.16.0\n")
    write(d, "pyproj/pyproject.toml", """\
        [project]
        name = "demo"
        version = "0.1.0"
        dependencies = ["six==1.16.0", "attrs==23.1.0"]
        [project.optional-dependencies]
        dev = ["pytest==8.0.0"]
        """)
    write(d, "uvproj/pyproject.toml", """\
        [project]
        name = "uvdemo"
        version = "0.1.0"
        dependencies = ["six==1.16.0"]
        """)
    write(d, "poetry/pyproject.toml", """\
        [tool.poetry]
        name = "pdemo"
        version = "0.1.0"
        description = ""
        authors = []
        [tool.poetry.dependencies]
        python = "^3.11"
        six = "1.16.0"
        """)
    write(d, "poetry/poetry.lock", "# a lock\n")
    write(d, "env.yml", "name: base\ndependencies:\n  - numpy\n")
    write(d, "docker/Dockerfile", "FROM python:3.13-slim\nARG V=1\nCOPY data.txt /data.txt\nRUN echo $V\n")
    write(d, "docker/data.txt", "hello\n")
    write(d, "config.json", '{"a": 1}\n')
    write(d, "assets/a.txt", "a\n")
    write(d, "assets/skip.log", "log\n")
    write(d, "mymod/__init__.py", "X = 1\n")
    write(d, "mymod/util.py", "def f():\n    return 2\n")
    return d
