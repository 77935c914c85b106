"""An app whose functions the tests call with .remote() and .map(). It imports only strata
and the standard library: the container imports this module (mounted from here), as Modal's
containers import a function's module."""

import os
import sys
import time

import strata as modal

image = modal.Image.debian_slim("3.13").env({"APP_GREETING": "hello from the image"})
app = modal.App("remote-app", image=image)

with image.imports():
    import json  # in the image too: nothing to skip

BARRIER = "/barrier"
barrier_volume = modal.Volume.from_name("py-test-map-barrier", create_if_missing=True)


class Boom(Exception):
    """Raised in the container; pickled back and raised again by the caller."""


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y


def helper(x):
    return x * x


@app.function()
def square(x):
    print(f"squaring {x}")
    print(f"stderr of {x}", file=sys.stderr)
    return helper(x)


@app.function(secrets=[modal.Secret.from_dict({"APP_TOKEN": "s3cret"})])
def where(point, *, scale=1):
    return {
        "local": modal.is_local(),
        "greeting": os.environ.get("APP_GREETING"),
        "token": os.environ.get("APP_TOKEN"),
        "point": (point.x * scale, point.y * scale),
        "json": json.dumps([1]),
    }


@app.function()
def fail(message):
    def deeper():
        raise Boom(message)

    deeper()


@app.function(timeout=2)
def sleepy():
    time.sleep(120)


@app.function(volumes={BARRIER: barrier_volume}, timeout=120)
def meet(run_id, i, n):
    """Each call marks its arrival, then waits until all n have arrived: a map that ran the
    calls one after another would never see them all, and time out."""
    folder = os.path.join(BARRIER, run_id)
    os.makedirs(folder, exist_ok=True)
    open(os.path.join(folder, str(i)), "w").close()
    deadline = time.time() + 90
    while time.time() < deadline:
        if len(os.listdir(folder)) >= n:
            return i
        time.sleep(0.05)
    raise TimeoutError(f"call {i}: only {len(os.listdir(folder))} of {n} calls arrived: they did not run at once")


class Coded(Exception):
    """An exception pickle cannot rebuild (its __init__ takes two arguments)."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


@app.function()
def fail_coded():
    raise Coded(42, "the answer")


@app.function()
def exits():
    sys.exit(3)


@app.function(volumes={BARRIER: barrier_volume}, timeout=120)
def first_fails(run_id, i, n):
    """Call 0 fails once the others have started; the others would mark that they finished
    five seconds later, unless the map stops them when call 0's error ends it."""
    folder = os.path.join(BARRIER, run_id)
    os.makedirs(folder, exist_ok=True)
    if i == 0:
        deadline = time.time() + 90
        while len([f for f in os.listdir(folder) if f.startswith("started-")]) < n - 1 and time.time() < deadline:
            time.sleep(0.05)
        raise Boom("the first call failed")
    open(os.path.join(folder, f"started-{i}"), "w").close()
    time.sleep(5)
    open(os.path.join(folder, f"finished-{i}"), "w").close()
    return i
