"""run_function: its cache identity follows the function and what it uses, and nothing else."""

import importlib.util
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import unittest
from unittest import mock

from _support import make_fixtures, spec_keys, strata_or_skip

from strata import Image, InvalidError
from strata import _function

MODULE = """\
import json
import os

GREETING = {greeting!r}
LIMITS = (1, 2.5, "three", None, [b"x"], {{"k": True}})


def helper(name):
    return f"{{GREETING}}, {{name}}"


def unrelated():
    return {unrelated!r}


class Recorder:
    prefix = GREETING

    def line(self, text):
        return self.prefix + ":" + text


def build_step(path, name="world"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({{"msg": helper(name), "limits": repr(LIMITS), "rec": Recorder().line(name)}}, f)
"""


def load(greeting="hello", unrelated=1):
    """The module above, with these values, loaded from its own file."""
    d = tempfile.mkdtemp(prefix="strata-py-rf-")
    path = os.path.join(d, "rfmod.py")
    with open(path, "w") as f:
        f.write(MODULE.format(greeting=greeting, unrelated=unrelated))
    spec = importlib.util.spec_from_file_location("rfmod", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["rfmod"] = mod  # inspect finds class sources through sys.modules
    spec.loader.exec_module(mod)
    return mod


def command(image):
    return image.spec()["image"][-1]["run_commands"]["commands"][0]


def step(mod, **kw):
    return Image.debian_slim("3.13").run_function(mod.build_step, args=("/out/r.json",), **kw)


class RunFunctionIdentityTest(unittest.TestCase):
    def test_same_definition_same_command(self):
        self.assertEqual(command(step(load())), command(step(load())))

    def test_helper_change_changes_the_command(self):
        self.assertNotEqual(command(step(load(greeting="hello"))), command(step(load(greeting="bonjour"))))

    def test_unrelated_change_keeps_the_command(self):
        self.assertEqual(command(step(load(unrelated=1))), command(step(load(unrelated=2))))

    def test_arguments_and_timeout_are_part_of_it(self):
        mod = load()
        base = command(step(mod))
        self.assertNotEqual(base, command(Image.debian_slim("3.13").run_function(mod.build_step, args=("/out/other.json",))))
        self.assertNotEqual(base, command(step(mod, timeout=60)))

    def test_keys_follow_helpers_not_unrelated_functions(self):
        strata = strata_or_skip(self)
        d = make_fixtures()

        def key(mod):
            path = os.path.join(d, "rf.json")
            with open(path, "w") as f:
                import json

                json.dump(step(mod).spec(), f)
            return spec_keys(strata, path)[-1][1]

        k = key(load())
        self.assertEqual(k, key(load(unrelated=99)))
        self.assertNotEqual(k, key(load(greeting="hi")))

    def test_script_runs_here_as_it_will_in_the_image(self):
        mod = load()
        out = os.path.join(tempfile.mkdtemp(), "sub", "r.json")
        img = Image.debian_slim("3.13").run_function(mod.build_step, args=(out,), kwargs={"name": "strata"})
        cmd = command(img).replace("python3 -c", f"{sys.executable} -c", 1)
        subprocess.run(["sh", "-c", cmd], check=True, cwd=tempfile.mkdtemp())
        with open(out) as f:
            got = f.read()
        self.assertIn('"msg": "hello, strata"', got)
        self.assertIn('"rec": "hello:strata"', got)
        self.assertIn('"limits": "(1, 2.5, \'three\', None, [b\'x\'], {\'k\': True})"', got)

    def test_the_script_holds_helpers_but_not_unrelated_functions(self):
        text = _function.script(load().build_step, ("/x",))
        self.assertIn("def helper(name):", text)
        self.assertIn("class Recorder:", text)
        self.assertIn("GREETING = 'hello'", text)
        self.assertIn("import json", text)
        self.assertNotIn("def unrelated", text)


class RunFunctionErrorsTest(unittest.TestCase):
    def setUp(self):
        # Nothing may reach strata: if it did, this would raise StrataNotFoundError instead.
        patcher = mock.patch.dict(os.environ, {"STRATA_BIN": "/nonexistent/strata"})
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_unpicklable_argument_fails_before_anything_runs(self):
        mod = load()
        with self.assertRaises(InvalidError) as cm:
            Image.debian_slim().run_function(mod.build_step, args=("/out", threading.Lock()))
        self.assertIn("args[1] of type lock cannot be pickled", str(cm.exception))
        with self.assertRaises(InvalidError) as cm:
            Image.debian_slim().run_function(mod.build_step, kwargs={"name": (x for x in [])})
        self.assertIn("kwargs['name'] of type generator cannot be pickled", str(cm.exception))

    def test_lambda_and_non_function(self):
        with self.assertRaisesRegex(InvalidError, "does not support lambda functions"):
            Image.debian_slim().run_function(lambda: None)
        with self.assertRaisesRegex(InvalidError, "must be a function, not int"):
            Image.debian_slim().run_function(3)

    def test_closure_is_refused(self):
        x = 1

        def inner():
            return x

        with self.assertRaisesRegex(InvalidError, r"uses variables of the function it is defined in \(x\)"):
            Image.debian_slim().run_function(inner)

    def test_unreproducible_global_is_refused(self):
        mod = load()
        mod.GREETING = threading.Lock()
        with self.assertRaisesRegex(InvalidError, "module-level name 'GREETING', a lock, which cannot be reproduced"):
            Image.debian_slim().run_function(mod.build_step)

    def test_parameters_without_a_spec_field(self):
        mod = load()
        for param, value in (("cpu", 2.0), ("memory", 1024), ("cloud", "aws"), ("region", "us-east"),
                             ("network_file_systems", {"/n": object()}), ("include_source", False)):
            with self.subTest(param=param):
                with self.assertRaisesRegex(InvalidError, f"parameter `{param}` is not supported by strata"):
                    Image.debian_slim().run_function(mod.build_step, **{param: value})


if __name__ == "__main__":
    unittest.main()
