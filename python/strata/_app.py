"""App and Function: Python functions that run in containers of an image, as ``modal.App``'s.

    app = strata.App(image=image)

    @app.function(secrets=[strata.Secret.from_name("api")], timeout=600)
    def square(x):
        return x * x

    square.remote(3)                  # 9, computed in a container of the image
    list(square.map(range(8)))        # eight containers at once

A call builds the image (cached layers are skipped), then runs the image's ``python3`` in a new
container with ``strata run``. As Modal does, the container imports the function's own module,
mounted read-only from this machine, and calls the function there, so module-level code runs
in the container too: ``with image.imports():`` raises an ImportError there rather than skip
it. Arguments go in, and the result or exception comes back, by pickle through a private
folder mounted into the container. The function's stdout and stderr stream to this process's
as they come. An exception raised in the container is raised here, with the remote traceback
as its cause.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import inspect
import io
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
from typing import Any, Callable, Collection, Iterable, Iterator, Optional, Union

from . import _cli
from ._function import PICKLE_PROTOCOL, pickle_arguments
from ._image import Image, _check_gpu, _check_secrets, _check_volumes, _unsupported
from ._objects import Secret, Volume
from .exception import ExecutionError, FunctionTimeoutError, InvalidError, RemoteError

#: Where a call's files are, in the container.
_ROOT = "/__strata"
#: This package's folder, mounted read-only so that the function's module can import strata.
_CLIENT = os.path.dirname(os.path.abspath(__file__))
#: The module name a function defined in a script (__main__) is imported under in the container,
#: so that its `if __name__ == "__main__":` block does not run there.
_MAIN_ALIAS = "__strata_main__"

#: How many containers a .map runs at once, unless max_containers says.
DEFAULT_CONCURRENCY = 32

# The program the container's python3 runs: import the module, call the function, write the
# outcome. Arguments: the module's name, its file (for __main__), the function's qualname.
_DRIVER = r"""
import importlib, importlib.util, os, pickle, signal, sys, traceback
root = "/__strata"
# The process is the container's init, which ignores a SIGTERM it does not handle: stopping a
# call (its timeout, or its map ending) raises SystemExit in the function instead.
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
# /root last: add_local_python_source puts modules there, as Modal does.
sys.path[:0] = [root + "/client", root + "/app"]
sys.path.append("/root")
module, path, qualname = sys.argv[1:4]

def outcome():
    try:
        if module == "__main__":
            spec = importlib.util.spec_from_file_location("__strata_main__", path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules["__strata_main__"] = mod
            spec.loader.exec_module(mod)
            sys.modules["__main__"] = mod
        else:
            mod = importlib.import_module(module)
        fn = mod
        for part in qualname.split("."):
            fn = getattr(fn, part)
        fn = getattr(fn, "_strata_raw_f", fn)
        with open(root + "/io/call.pkl", "rb") as f:
            args, kwargs = pickle.load(f)
        return ("ok", fn(*args, **kwargs))
    except BaseException as e:
        return ("error", e, traceback.format_exc())

result = outcome()
if result[0] == "ok":
    try:
        data = pickle.dumps(result, protocol=4)
    except BaseException as e:
        why = "".join(traceback.format_exception_only(type(e), e)).strip()
        tb = "the result of %s, of type %s, cannot be pickled: %s" % (qualname, type(result[1]).__name__, why)
        data = pickle.dumps(("error", None, tb, "", ""), protocol=4)
else:
    _, exc, tb = result
    # The exception is pickled on its own: the caller may be unable to rebuild it (a class only
    # the image has, an __init__ that pickle cannot call again) and falls back to its name,
    # its message and the traceback.
    try:
        raw = pickle.dumps(exc, protocol=4)
    except BaseException:
        raw = None
    data = pickle.dumps(("error", raw, tb, type(exc).__module__ + "." + type(exc).__qualname__, str(exc)), protocol=4)
sys.stdout.flush()
sys.stderr.flush()
with open(root + "/io/result.tmp", "wb") as f:
    f.write(data)
os.replace(root + "/io/result.tmp", root + "/io/result.pkl")
"""


class _RemoteTraceback(Exception):
    """The traceback of an exception raised in the container, set as its __cause__ here."""

    def __init__(self, tb: str):
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return "the traceback in the container:\n" + self.tb


class _Unpickler(pickle.Unpickler):
    """Reads a call's outcome: what the container's __strata_main__ defined is this process's __main__."""

    def find_class(self, module: str, name: str) -> Any:
        if module == _MAIN_ALIAS:
            module = "__main__"
        return super().find_class(module, name)


def _source(fn: types.FunctionType) -> tuple[str, str, str]:
    """(module name, local path to mount, its path in the container) for a function's module:
    the module's file, or the folder of the top-level package it is part of."""
    mod = sys.modules.get(fn.__module__)
    file = getattr(mod, "__file__", None)
    if not file:
        raise InvalidError(
            f"{fn.__qualname__} is defined in {fn.__module__!r}, which has no source file to mount "
            f"(an interactive session?). Define it in a .py file."
        )
    file = os.path.abspath(file)
    if fn.__module__ == "__main__":
        return "__main__", file, f"{_ROOT}/app/{_MAIN_ALIAS}.py"
    parts = fn.__module__.split(".")
    if getattr(mod, "__path__", None) is not None:  # a package's __init__
        parts.append("__init__")
    top = file
    for _ in parts:
        top = os.path.dirname(top)
    local = os.path.join(top, parts[0]) if len(parts) > 1 else file
    remote = f"{_ROOT}/app/{parts[0]}" + ("" if len(parts) > 1 else ".py")
    return fn.__module__, local, remote


class FunctionCall:
    """A call started with Function.spawn(); get() waits for its result."""

    def __init__(self, future: concurrent.futures.Future):
        self._future = future

    def get(self, timeout: Optional[float] = None) -> Any:
        """The call's result (or its exception, raised), waiting up to timeout seconds."""
        try:
            return self._future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"the call did not finish within {timeout} s") from None


class Function:
    """A function that runs in containers of an image: .remote(), .map(), .spawn(), .local()."""

    def __init__(self, app: "App", raw_f: types.FunctionType, image: Image, secrets: list[Secret],
                 volumes: dict[str, Volume], gpu: Optional[str], timeout: int, retries: int,
                 max_containers: Optional[int], env: dict[str, str], include_source: bool, block_network: bool):
        self.app = app
        self._strata_raw_f = raw_f
        self.image = image
        self._secrets = secrets
        self._volumes = volumes
        self._gpu = gpu
        self._timeout = timeout
        self._retries = retries
        self._max_containers = max_containers
        self._env = env
        self._include_source = include_source
        self._block_network = block_network
        self._built: Optional[str] = None
        self._lock = threading.Lock()
        self.__doc__ = raw_f.__doc__
        self.__name__ = raw_f.__name__
        self.__qualname__ = raw_f.__qualname__
        self.__module__ = raw_f.__module__
        self.__wrapped__ = raw_f

    def __repr__(self) -> str:
        return f"Function({self.__qualname__})"

    def get_raw_f(self) -> Callable[..., Any]:
        """The function as defined, undecorated."""
        return self._strata_raw_f

    def local(self, *args, **kwargs) -> Any:
        """Call the function here, in this process."""
        return self._strata_raw_f(*args, **kwargs)

    #: Calling the function calls it in this process, as .local() does (inside a container,
    #: functions call each other this way).
    __call__ = local

    def remote(self, *args, **kwargs) -> Any:
        """Call the function in a new container of its image and return its result. An exception
        raised there is raised here, with the remote traceback as its cause."""
        payload = pickle_arguments(self.__qualname__, args, kwargs, caller=f"{self.__qualname__}.remote")
        return self._call(self._build(), payload)

    def spawn(self, *args, **kwargs) -> FunctionCall:
        """Start a call in the background; .get() on what it returns waits for the result. Unlike
        Modal's, the call runs on this machine: this process waits for it before it exits."""
        payload = pickle_arguments(self.__qualname__, args, kwargs, caller=f"{self.__qualname__}.spawn")
        name = self._build()
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        future = pool.submit(self._call, name, payload)
        pool.shutdown(wait=False)
        return FunctionCall(future)

    def map(self, *input_iterators: Iterable[Any], kwargs: dict = {}, order_outputs: bool = True,
            return_exceptions: bool = False) -> Iterator[Any]:
        """Call the function once per input, each in its own container, concurrently (up to
        max_containers at once). map(f, xs, ys) calls f(x, y) for each pair, as Python's map
        does. Results come in input order, or as they finish with order_outputs=False."""
        if not input_iterators:
            raise InvalidError(f"{self.__qualname__}.map needs at least one iterable of inputs.")
        return self._map([(tuple(a), dict(kwargs)) for a in zip(*input_iterators)], order_outputs, return_exceptions)

    def starmap(self, input_iterator: Iterable[Iterable[Any]], *, kwargs: dict = {}, order_outputs: bool = True,
                return_exceptions: bool = False) -> Iterator[Any]:
        """As map, each input being the tuple of arguments: starmap(f, [(1, 2)]) calls f(1, 2)."""
        return self._map([(tuple(a), dict(kwargs)) for a in input_iterator], order_outputs, return_exceptions)

    def for_each(self, *input_iterators: Iterable[Any], kwargs: dict = {}, ignore_exceptions: bool = False) -> None:
        """As map, for calls made for what they do: the results are dropped."""
        for _ in self.map(*input_iterators, kwargs=kwargs, return_exceptions=ignore_exceptions):
            pass

    # --- the calls ---------------------------------------------------------------------------

    def _map(self, calls: list[tuple[tuple, dict]], ordered: bool, return_exceptions: bool) -> Iterator[Any]:
        # Every argument is pickled before any container starts: a bad one fails the map at once.
        payloads = [pickle_arguments(self.__qualname__, a, k, caller=f"{self.__qualname__}.map") for a, k in calls]

        def gen() -> Iterator[Any]:
            if not payloads:
                return
            name = self._build()
            workers = min(len(payloads), self._max_containers or DEFAULT_CONCURRENCY)
            stop = threading.Event()  # set when the map ends early: its running calls are stopped
            with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(self._call, name, p, stop) for p in payloads]
                try:
                    done = futures if ordered else concurrent.futures.as_completed(futures)
                    for f in done:
                        try:
                            yield f.result()
                        except Exception as e:
                            if not return_exceptions:
                                raise
                            yield e
                finally:
                    stop.set()
                    for f in futures:
                        f.cancel()

        return gen()

    def _build(self) -> str:
        """Build the image once per Function (later calls reuse the name), and make its secrets
        and volumes exist."""
        with self._lock:
            if self._built is None:
                name = self.image.build()
                for s in self._secrets:
                    s._ensure()
                for v in self._volumes.values():
                    v._ensure()
                self._built = name
            return self._built

    def _argv(self, name: str, io_dir: str) -> list[str]:
        args = [_cli.strata_bin(), "run", name, "--mount", f"{io_dir}:{_ROOT}/io", "--mount", f"{_CLIENT}:{_ROOT}/client/strata:ro"]
        module, path = self.__module__, ""
        if self._include_source:
            module, local, remote = _source(self._strata_raw_f)
            args += ["--mount", f"{local}:{remote}:ro"]
            path = remote
        for k, v in self._env.items():
            args += ["-e", f"{k}={v}"]
        for s in self._secrets:
            args += ["--secret", s.name]
        for p, v in self._volumes.items():
            args += ["-v", f"{v.name}:{p}"]
        if self._gpu:
            args += ["--gpus", self._gpu]
        if self._block_network:
            args += ["--network", "none"]
        # -u: the function's prints reach this process as they are made, in order with its stderr.
        return args + ["--", "python3", "-u", "-c", _DRIVER, module, path, self.__qualname__]

    def _call(self, name: str, payload: bytes, stop: Optional[threading.Event] = None) -> Any:
        for attempt in range(self._retries + 1):
            try:
                return self._call_once(name, payload, stop)
            except Exception:
                if attempt == self._retries or (stop is not None and stop.is_set()):
                    raise
        raise AssertionError("unreachable")

    def _call_once(self, name: str, payload: bytes, stop: Optional[threading.Event]) -> Any:
        with tempfile.TemporaryDirectory(prefix="strata-call-") as tmp:
            io_dir = os.path.join(tmp, "io")
            os.mkdir(io_dir)
            # The container's user may be any user of the image: it reads the call and writes
            # the result here. The folder above is this user's alone.
            os.chmod(io_dir, 0o777)
            with open(os.path.join(io_dir, "call.pkl"), "wb") as f:
                f.write(payload)
            os.chmod(os.path.join(io_dir, "call.pkl"), 0o644)
            code, tail = self._run(self._argv(name, io_dir), stop)
            result_path = os.path.join(io_dir, "result.pkl")
            if not os.path.exists(result_path):
                raise ExecutionError(
                    f"{self.__qualname__} in image {name}: the container exited with code {code} before the "
                    f"function returned" + (":\n" + "\n".join(tail) if tail else ".")
                )
            with open(result_path, "rb") as f:
                data = f.read()
        return _outcome(self.__qualname__, data)

    def _run(self, argv: list[str], stop: Optional[threading.Event]) -> tuple[int, list[str]]:
        """Run strata, copying the container's stdout and stderr to this process's as they come.
        Returns the exit code and the last lines of stderr. Past the timeout, or when stop is
        set, the call is stopped."""
        tail: list[str] = []
        with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
            def pump(src: Any, dst: Any, keep: bool) -> None:
                for line in iter(src.readline, b""):
                    text = line.decode(errors="replace")
                    if keep:
                        tail.append(text.rstrip("\n"))
                        del tail[:-20]
                    try:
                        dst.write(text)
                        dst.flush()
                    except Exception:
                        pass  # a closed or missing stream here: keep draining, or the container blocks

            threads = [threading.Thread(target=pump, args=(p.stdout, sys.stdout, False), daemon=True),
                       threading.Thread(target=pump, args=(p.stderr, sys.stderr, True), daemon=True)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + self._timeout
            try:
                while True:
                    try:
                        code = p.wait(timeout=min(0.25, max(0.0, deadline - time.monotonic())))
                        break
                    except subprocess.TimeoutExpired:
                        stopped = stop is not None and stop.is_set()
                        if not stopped and time.monotonic() < deadline:
                            continue
                        _terminate(p)
                        if stopped:
                            raise ExecutionError(f"{self.__qualname__}: stopped, as the map it was part of ended") from None
                        raise FunctionTimeoutError(
                            f"{self.__qualname__} timed out after {self._timeout} s (timeout={self._timeout})"
                        ) from None
            finally:
                for t in threads:
                    t.join(timeout=5)
        return code, tail


def _terminate(p: subprocess.Popen) -> None:
    """Stop a strata run: SIGTERM, which strata forwards to the process before it removes the
    container; SIGKILL after ten seconds (the container is then removed by the next strata
    command that opens the store)."""
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def _outcome(qualname: str, data: bytes) -> Any:
    """The function's result, or its exception raised with the remote traceback as its cause."""
    try:
        outcome = _Unpickler(io.BytesIO(data)).load()
    except Exception as e:
        raise RemoteError(
            f"{qualname} returned, but its result cannot be unpickled here ({type(e).__name__}: {e}): "
            f"return types this process can import, such as plain data."
        ) from e
    if outcome[0] == "ok":
        return outcome[1]
    _, raw, tb, name, message = outcome
    exc: Optional[BaseException] = None
    if raw is not None:
        try:
            exc = _Unpickler(io.BytesIO(raw)).load()
        except Exception:
            exc = None
    if not isinstance(exc, Exception):
        # Not rebuilt here, or a SystemExit or KeyboardInterrupt, which must not end this process.
        what = f"{name}: {message}" if name else "failed"
        exc = RemoteError(f"{qualname} raised {what}" if name else f"{qualname} failed: {tb.strip().splitlines()[-1]}")
    raise exc from _RemoteTraceback(tb)


class App:
    """A group of functions with shared defaults, as ``modal.App``. Nothing is deployed: each
    call of a function runs in a new local container of its image."""

    def __init__(self, name: Optional[str] = None, *, image: Optional[Image] = None,
                 secrets: Collection[Secret] = (), volumes: dict[str, Volume] = {}, include_source: bool = True):
        if image is not None and not isinstance(image, Image):
            raise InvalidError(f"App(image=...) takes a strata Image, not {type(image).__name__}.")
        self.name = name
        self._image = image
        self._secrets = _check_secrets(secrets)
        self._volumes = _check_volumes("App", volumes)
        self._include_source = include_source
        self.registered_functions: dict[str, Function] = {}
        self.registered_entrypoints: dict[str, Callable[..., Any]] = {}

    def __repr__(self) -> str:
        return f"App({self.name or ''})"

    @property
    def image(self) -> Optional[Image]:
        return self._image

    def function(
        self,
        _warn_parentheses_missing: Any = None,
        *,
        image: Optional[Image] = None,
        secrets: Collection[Secret] = (),
        volumes: dict[str, Volume] = {},
        gpu: Union[str, list[str], None] = None,
        timeout: int = 300,
        retries: Optional[int] = None,
        max_containers: Optional[int] = None,
        env: Optional[dict[str, str]] = None,
        block_network: bool = False,
        include_source: Optional[bool] = None,
        serialized: bool = False,
        name: Optional[str] = None,
        **unsupported: Any,
    ) -> Callable[[Callable[..., Any]], Function]:
        """Make a function callable in containers of `image` (the App's image, or debian_slim)."""
        if _warn_parentheses_missing is not None:
            raise InvalidError("Did you forget parentheses? Use @app.function(), not @app.function.")
        for param in unsupported:
            raise _unsupported("App.function", param)
        if serialized:
            raise _unsupported("App.function", "serialized", "define the function at module level in a .py file")
        if name is not None:
            raise _unsupported("App.function", "name")
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidError(f"App.function: timeout must be a positive number of seconds, not {timeout!r}.")
        if retries is not None and (not isinstance(retries, int) or retries < 0):
            raise InvalidError(f"App.function: retries must be a whole number of retries, not {retries!r}.")
        if max_containers is not None and (not isinstance(max_containers, int) or max_containers < 1):
            raise InvalidError(f"App.function: max_containers must be at least 1, not {max_containers!r}.")
        env = dict(env or {})
        if any(not isinstance(k, str) or not isinstance(v, str) for k, v in env.items()):
            raise InvalidError("App.function: env must be a dict of strings.")
        fn_image = image if image is not None else self._image if self._image is not None else Image.debian_slim()
        if not isinstance(fn_image, Image):
            raise InvalidError(f"App.function(image=...) takes a strata Image, not {type(fn_image).__name__}.")
        fn_secrets = self._secrets + [s for s in _check_secrets(secrets) if s not in self._secrets]
        fn_volumes = {**self._volumes, **_check_volumes("App.function", volumes)}
        fn_gpu = _check_gpu(gpu)

        def wrap(f: Callable[..., Any]) -> Function:
            if isinstance(f, Function):
                raise InvalidError(f"{f.__qualname__} is already an app function.")
            raw = inspect.unwrap(f) if callable(f) else f
            if not isinstance(raw, types.FunctionType):
                raise InvalidError(f"App.function decorates a function defined with `def`, not {type(f).__name__}.")
            if "<locals>" in raw.__qualname__ or raw.__name__ == "<lambda>":
                raise InvalidError(
                    f"{raw.__qualname__}: app functions must be defined at module level (global scope), "
                    f"where the container can import them."
                )
            source = self._include_source if include_source is None else include_source
            if not source and raw.__module__ == "__main__":
                raise InvalidError(
                    f"{raw.__qualname__} is defined in the script being run, which the container can only "
                    f"import when it is mounted: leave include_source=True."
                )
            fn = Function(self, f, fn_image, fn_secrets, fn_volumes, fn_gpu, timeout, retries or 0,
                          max_containers, env, source, block_network)
            self.registered_functions[raw.__qualname__] = fn
            return fn

        return wrap

    def local_entrypoint(self, _warn_parentheses_missing: Any = None, *, name: Optional[str] = None) -> Callable:
        """Mark the function that drives the app from this machine. Call it to run it; strata has
        no `modal run` command."""
        if _warn_parentheses_missing is not None:
            raise InvalidError("Did you forget parentheses? Use @app.local_entrypoint(), not @app.local_entrypoint.")

        def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
            self.registered_entrypoints[name or f.__name__] = f
            return f

        return wrap

    @contextlib.contextmanager
    def run(self, *args: Any, **kwargs: Any) -> Iterator["App"]:
        """`with app.run():`, as in Modal. strata has nothing to start or stop: calls run as they are made."""
        yield self
