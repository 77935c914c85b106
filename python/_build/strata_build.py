"""A PEP 517 build backend in the standard library only, so `pip install ./python` works offline.

setuptools 65 (the one this machine has) needs the separate `wheel` package to build wheels,
and pip's build isolation would download it; this backend needs nothing. It packs the
`strata` package folder and the metadata from pyproject.toml's [project] table.
"""

import base64
import hashlib
import io
import os
import tarfile
import zipfile

try:
    import tomllib  # Python 3.11+
except ImportError:  # Python 3.10: the few keys we need, read by hand
    tomllib = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "strata"


def _project():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        data = f.read()
    if tomllib is not None:
        return tomllib.loads(data.decode())["project"]
    out, section = {}, None
    for line in data.decode().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "project" and "=" in line:
            k, v = (s.strip() for s in line.split("=", 1))
            if v.startswith('"'):
                out[k] = v.strip('"')
    return out


def _metadata():
    p = _project()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {p['name']}",
        f"Version: {p['version']}",
        f"Summary: {p.get('description', '')}",
        f"Requires-Python: {p.get('requires-python', '>=3.10')}",
    ]
    readme = os.path.join(ROOT, "README.md")
    body = ""
    if os.path.exists(readme):
        lines.append("Description-Content-Type: text/markdown")
        with open(readme, encoding="utf-8") as f:
            body = "\n" + f.read()
    return p["name"], p["version"], "\n".join(lines) + "\n" + body


def _package_files():
    base = os.path.join(ROOT, PACKAGE)
    for folder, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".py", ".typed")):
                full = os.path.join(folder, name)
                yield full, os.path.relpath(full, ROOT).replace(os.sep, "/")


def _wheel(wheel_directory, files):
    name, version, metadata = _metadata()
    dist = f"{name.replace('-', '_')}-{version}"
    wheel_name = f"{dist}-py3-none-any.whl"
    records = []
    path = os.path.join(wheel_directory, wheel_name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        def add(arcname, data):
            z.writestr(zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0)), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{arcname},sha256={digest},{len(data)}")

        for arcname, data in files:
            add(arcname, data)
        add(f"{dist}.dist-info/METADATA", metadata.encode())
        add(f"{dist}.dist-info/WHEEL", b"Wheel-Version: 1.0\nGenerator: strata_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        add(f"{dist}.dist-info/top_level.txt", f"{PACKAGE}\n".encode())
        records.append(f"{dist}.dist-info/RECORD,,")
        z.writestr(zipfile.ZipInfo(f"{dist}.dist-info/RECORD", date_time=(1980, 1, 1, 0, 0, 0)), "\n".join(records) + "\n")
    return wheel_name


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = []
    for full, rel in _package_files():
        with open(full, "rb") as f:
            files.append((rel, f.read()))
    return _wheel(wheel_directory, files)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """An editable install: a .pth file that puts this folder on sys.path."""
    return _wheel(wheel_directory, [(f"__editable__.{PACKAGE}.pth", (ROOT + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    name, version, metadata = _metadata()
    base = f"{name}-{version}"
    path = os.path.join(sdist_directory, f"{base}.tar.gz")
    with tarfile.open(path, "w:gz") as t:
        def add(rel, data):
            info = tarfile.TarInfo(f"{base}/{rel}")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))

        add("PKG-INFO", metadata.encode())
        for rel in ("pyproject.toml", "README.md", "_build/strata_build.py"):
            full = os.path.join(ROOT, rel)
            if os.path.exists(full):
                with open(full, "rb") as f:
                    add(rel, f.read())
        for full, rel in _package_files():
            with open(full, "rb") as f:
                add(rel, f.read())
    return os.path.basename(path)
