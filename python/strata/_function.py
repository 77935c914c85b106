"""run_function: a Python function made into a self-contained script for the image's python3.

The script holds the function's source, the sources of the module-level functions and classes
it uses (found by walking its code objects, then theirs), the module-level constants it reads
(as literals), the imports of modules and of objects from other modules, and the pickled
arguments. Its text is the layer's cache identity: changing a helper the function calls
changes the key; changing an unrelated function of the same module does not.
"""

from __future__ import annotations

import ast
import base64
import builtins
import dis
import inspect
import math
import pickle
import textwrap
import types
from typing import Any, Callable, Optional

from .exception import InvalidError

#: Pickle protocol of arguments: readable by every Python from 3.4.
PICKLE_PROTOCOL = 4

#: Longest command strata can pass (Linux's limit for one argument is 128 KiB).
MAX_COMMAND = 120_000

_LITERAL_TYPES = (type(None), bool, int, float, complex, str, bytes)


def check_function(fn: Any) -> None:
    """Refuse what run_function cannot run, with Modal's messages where Modal has them."""
    if not callable(fn):
        raise InvalidError(f"Argument to Image.run_function must be a function, not {type(fn).__name__}.")
    raw = inspect.unwrap(fn)
    if not isinstance(raw, types.FunctionType):
        raise InvalidError(
            f"Image.run_function takes a plain function defined with `def`, not {type(fn).__name__}: "
            f"wrap it in one."
        )
    if raw.__name__ == "<lambda>":
        raise InvalidError("Image.run_function does not support lambda functions.")
    if raw.__closure__:
        names = ", ".join(raw.__code__.co_freevars)
        raise InvalidError(
            f"Image.run_function: {raw.__qualname__} uses variables of the function it is defined in "
            f"({names}); define it at module level and pass them with args= or kwargs=."
        )


def pickle_arguments(fn_name: str, args: tuple, kwargs: dict, caller: str = "Image.run_function") -> bytes:
    """Pickle (args, kwargs), or say which argument cannot be pickled."""
    if not isinstance(args, (tuple, list)):
        raise InvalidError(f"{caller}: args must be a tuple, not {type(args).__name__}.")
    if not isinstance(kwargs, dict):
        raise InvalidError(f"{caller}: kwargs must be a dict, not {type(kwargs).__name__}.")
    try:
        return pickle.dumps((tuple(args), dict(kwargs)), protocol=PICKLE_PROTOCOL)
    except Exception:  # pickling raises many types: TypeError, PicklingError, AttributeError...
        pass
    # Say which argument it was.
    named = [(f"args[{i}]", a) for i, a in enumerate(args)] + [(f"kwargs[{k!r}]", v) for k, v in kwargs.items()]
    for where, value in named:
        try:
            pickle.dumps(value, protocol=PICKLE_PROTOCOL)
        except Exception as e:  # pickling raises many types: TypeError, PicklingError, AttributeError...
            raise InvalidError(
                f"{caller}({fn_name}): {where} of type {type(value).__name__} cannot be pickled "
                f"({e}). Arguments cross to the container by pickle: pass plain data (str, numbers, "
                f"lists, dicts, dataclasses of a module the image has) instead."
            ) from e
    return pickle.dumps((tuple(args), dict(kwargs)), protocol=PICKLE_PROTOCOL)


class _Collector:
    """Walks a function's code and gathers what the script needs, in a stable order."""

    def __init__(self, fn: types.FunctionType):
        self.root = fn
        self.module = fn.__module__
        self.globals = fn.__globals__
        self.imports: dict[str, str] = {}  # bound name -> import statement
        self.constants: dict[str, str] = {}  # name -> assignment
        self.defs: dict[str, tuple[int, str]] = {}  # name -> (line, source)
        self.seen: set[str] = set()

    # --- walking -------------------------------------------------------------------------------

    def add_function(self, name: str, obj: Any) -> None:
        raw = inspect.unwrap(obj)
        if raw.__closure__:
            raise InvalidError(
                f"Image.run_function({self.root.__name__}): {name} uses variables of an enclosing function "
                f"({', '.join(raw.__code__.co_freevars)}), so it cannot be reproduced in the image."
            )
        src, line = _source(raw, f"{name} (used by {self.root.__name__})")
        self.defs[name] = (line, src)
        self.walk_code(raw.__code__)
        self.walk_ast(src, skip_bodies=True)

    def add_class(self, name: str, cls: type) -> None:
        src, line = _source(cls, f"class {name} (used by {self.root.__name__})")
        self.defs[name] = (line, src)
        self.walk_ast(src, skip_bodies=True)
        for member in vars(cls).values():
            member = getattr(member, "__func__", member)  # staticmethod, classmethod
            if isinstance(member, property):
                for f in (member.fget, member.fset, member.fdel):
                    if f is not None:
                        self.walk_code(f.__code__)
            elif isinstance(member, types.FunctionType):
                self.walk_code(inspect.unwrap(member).__code__)

    def walk_code(self, code: types.CodeType) -> None:
        for ins in dis.get_instructions(code):
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL"):
                self.need(ins.argval)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self.walk_code(const)

    def walk_ast(self, src: str, skip_bodies: bool) -> None:
        """Names used by decorators, defaults, base classes and class bodies (not function bodies,
        whose names the code walk finds precisely)."""
        tree = ast.parse(src)
        todo: list[ast.AST] = list(tree.body)
        while todo:
            node = todo.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and skip_bodies:
                todo.extend(node.decorator_list)
                todo.extend(node.args.defaults)
                todo.extend(d for d in node.args.kw_defaults if d is not None)
                continue
            if isinstance(node, ast.Lambda):
                continue
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                self.need(node.id)
            todo.extend(ast.iter_child_nodes(node))

    def need(self, name: str) -> None:
        if name in self.seen:
            return
        self.seen.add(name)
        if name not in self.globals:
            return  # a builtin, or a name that fails the same way locally
        value = self.globals[name]
        if value is self.root or inspect.unwrap(value) is self.root:
            return
        self.classify(name, value)

    def classify(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType):
            self.imports[name] = _import_module(name, value.__name__)
        elif _same_module(value, self.module) and isinstance(inspect.unwrap(value), types.FunctionType):
            self.add_function(name, value)
        elif _same_module(value, self.module) and isinstance(value, type):
            self.add_class(name, value)
        elif _is_literal(value):
            self.constants[name] = f"{name} = {value!r}"
        elif _importable(value):
            self.imports[name] = _import_from(name, value)
        elif getattr(builtins, name, object()) is value:
            return
        else:
            raise InvalidError(
                f"Image.run_function({self.root.__name__}): it uses the module-level name {name!r}, a "
                f"{type(value).__name__}, which cannot be reproduced in the image. Only modules, functions "
                f"and classes (by source or import) and literal constants (str, numbers, bytes, None, and "
                f"lists, tuples, dicts and sets of them) cross. Create it inside the function, or pass it "
                f"with args=/kwargs=."
            )


def _same_module(value: Any, module: str) -> bool:
    return getattr(value, "__module__", None) == module


def _source(obj: Any, what: str) -> tuple[str, int]:
    try:
        lines, line = inspect.getsourcelines(obj)
    except (OSError, TypeError) as e:
        raise InvalidError(
            f"Image.run_function: cannot read the source of {what}: {e}. Define it in a .py file."
        ) from e
    return textwrap.dedent("".join(lines)), line


def _import_module(name: str, module: str) -> str:
    if name == module:
        return f"import {module}"
    return f"import {module} as {name}"


def _importable(value: Any) -> bool:
    """An object of another module that can be imported by its module and qualified name."""
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname or module == "__main__":
        return False
    if not (callable(value) or isinstance(value, type)):
        return False
    import sys

    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj is value


def _import_from(name: str, value: Any) -> str:
    top, _, rest = value.__qualname__.partition(".")
    stmt = f"from {value.__module__} import {top}"
    if rest:
        return f"{stmt} as _strata_{name}_owner\n{name} = _strata_{name}_owner.{rest}"
    return stmt if top == name else f"{stmt} as {name}"


def _is_literal(value: Any, depth: int = 0) -> bool:
    if depth > 20:
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if type(value) in _LITERAL_TYPES:
        return True
    if type(value) in (list, tuple, set):
        return (type(value) is not set or len(value) > 0) and all(_is_literal(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(_is_literal(k, depth + 1) and _is_literal(v, depth + 1) for k, v in value.items())
    return False


def script(fn: Callable, args: tuple = (), kwargs: Optional[dict] = None, timeout: Optional[int] = None) -> str:
    """The Python program that runs fn(*args, **kwargs) in the image."""
    check_function(fn)
    kwargs = {} if kwargs is None else kwargs
    raw = inspect.unwrap(fn)
    payload = pickle_arguments(raw.__name__, args, kwargs)
    c = _Collector(raw)
    src, line = _source(fn, raw.__name__)
    c.walk_code(raw.__code__)
    c.walk_ast(src, skip_bodies=True)
    defs = sorted(c.defs.items(), key=lambda kv: (kv[1][0], kv[0]))
    parts = ["from __future__ import annotations"]
    parts += [c.imports[k] for k in sorted(c.imports)]
    parts += [c.constants[k] for k in sorted(c.constants)]
    parts += [s for _, (_, s) in defs]
    parts.append(src)
    call = [
        "import base64 as _strata_base64, pickle as _strata_pickle",
        f"_strata_args, _strata_kwargs = _strata_pickle.loads(_strata_base64.b64decode({base64.b64encode(payload).decode()!r}))",
    ]
    if timeout:
        call += [
            "import signal as _strata_signal",
            "def _strata_timeout(*_):",
            f"    raise TimeoutError('run_function {raw.__name__} timed out after {timeout} s: raise timeout=')",
            "_strata_signal.signal(_strata_signal.SIGALRM, _strata_timeout)",
            f"_strata_signal.alarm({int(timeout)})",
        ]
    call.append(f"{raw.__name__}(*_strata_args, **_strata_kwargs)")
    parts.append("\n".join(call))
    return "\n\n".join(p.rstrip("\n") for p in parts) + "\n"


def command(fn: Callable, args: tuple = (), kwargs: Optional[dict] = None, timeout: Optional[int] = None) -> str:
    """The shell command of the run_commands step: the image's python3 running script(...).

    The script travels base64-encoded, so no shell quoting can change it.
    """
    text = script(fn, args, kwargs, timeout)
    encoded = base64.b64encode(text.encode()).decode()
    name = inspect.unwrap(fn).__name__
    cmd = (
        "python3 -c 'import base64;exec(compile(base64.b64decode(\"" + encoded + "\").decode(),"
        "\"<run_function " + name + ">\",\"exec\"))'"
    )
    if len(cmd) > MAX_COMMAND:
        raise InvalidError(
            f"Image.run_function({name}): the function, its helpers and its arguments make a command of "
            f"{len(cmd)} bytes, more than the {MAX_COMMAND} strata can pass. Pass large data through a "
            f"Volume or a file added with add_local_file(copy=True) instead."
        )
    return cmd
