# A test fixture (TestPoetry): repackages the poetry that Debian installed, and every
# distribution it needs, as wheels that pip installs. Each wheel holds a distribution's files
# (dpkg -L of the Debian package that owns its metadata), its metadata, and a WHEEL and
# RECORD file; where Debian stripped a distribution's Requires-Dist (cleo's), they are
# derived from its Debian package's Depends, so pip installs what the code imports.
# Usage: python3 poetry-wheels.py OUT_DIR; prints the file names it wrote.
import base64, hashlib, importlib.metadata as md, os, re, subprocess, sys, zipfile
from packaging.requirements import Requirement

out = sys.argv[1]
site = "/usr/lib/python3/dist-packages"

def norm(n):
    return re.sub(r"[-_.]+", "-", n).lower()

dists = {norm(d.metadata["Name"]): d for d in md.distributions()}
def deb_package(d):
    return subprocess.run(["dpkg", "-S", str(d._path)], capture_output=True, text=True, check=True).stdout.split(":")[0]

def deb_requires(d):
    """The distributions that d's Debian package depends on: for metadata Debian stripped."""
    deps = subprocess.run(["dpkg-query", "-W", "-f=${Depends}", deb_package(d)], capture_output=True, text=True, check=True).stdout
    out = []
    for dep in deps.split(","):
        pkg = dep.split("|")[0].split("(")[0].strip().split(":")[0]
        if not pkg.startswith("python3-"):
            continue
        files = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True).stdout.split()
        for f in files:
            if os.path.dirname(f) == site and f.endswith((".dist-info", ".egg-info")):
                out.append(md.Distribution.at(f).metadata["Name"])
    return out

need, todo, added = {}, [("poetry", frozenset())], {}
while todo:
    name, extras = todo.pop()
    key = norm(name)
    if key in need and extras <= need[key]:
        continue
    need.setdefault(key, set()).update(extras)
    envs = [{"extra": e} for e in sorted(need[key])] or [{"extra": ""}]
    if not dists[key].requires:
        added[key] = deb_requires(dists[key])
    for r in (dists[key].requires or []) + added.get(key, []):
        req = Requirement(r)
        if req.marker is None or any(req.marker.evaluate(e) for e in envs):
            todo.append((req.name, frozenset(req.extras)))

def owner_files(d):
    info = str(d._path)
    pkg = deb_package(d)
    files = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True, check=True).stdout.split()
    return [f for f in files if f.startswith(site + "/") and os.path.isfile(f) and not f.startswith(info + "/")]

for key in sorted(need):
    d = dists[key]
    name, version = d.metadata["Name"], d.version
    files = owner_files(d)
    native = any(f.endswith(".so") for f in files)
    tag = "cp%d%d-cp%d%d-linux_x86_64" % (sys.version_info[:2] * 2) if native else "py3-none-any"
    dn = re.sub(r"[-_.]+", "_", name)
    info = f"{dn}-{version}.dist-info"
    whl = os.path.join(out, f"{dn}-{version}-{tag}.whl")
    record = []
    with zipfile.ZipFile(whl, "w", zipfile.ZIP_DEFLATED) as z:
        def add(arc, data):
            z.writestr(arc, data)
            h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{arc},sha256={h},{len(data)}")
        for f in files:
            rel = os.path.relpath(f, site)
            if "/__pycache__/" in f or rel.split("/")[0].endswith((".dist-info", ".egg-info")):
                continue
            add(rel, open(f, "rb").read())
        meta = os.path.join(str(d._path), "METADATA")
        if not os.path.exists(meta):  # an .egg-info: its PKG-INFO is the same format
            meta = os.path.join(str(d._path), "PKG-INFO")
        data = open(meta, "rb").read()
        if added.get(key):
            head, sep, body = data.partition(b"\n\n")
            head += b"".join(b"\nRequires-Dist: " + n.encode() for n in added[key])
            data = head + sep + body
        add(f"{info}/METADATA", data)
        for extra in ("entry_points.txt",):
            p = os.path.join(str(d._path), extra)
            if os.path.exists(p):
                add(f"{info}/{extra}", open(p, "rb").read())
        add(f"{info}/WHEEL", f"Wheel-Version: 1.0\nGenerator: strata-tests\nRoot-Is-Purelib: {'false' if native else 'true'}\nTag: {tag}\n".encode())
        record.append(f"{info}/RECORD,,")
        z.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    print(os.path.basename(whl))
