"""App functions run in containers: .remote() returns values and re-raises exceptions with the
remote traceback, .map() runs its calls at once, output streams back, image.imports() raises
in the container. Heavy: each call starts a container (needs what `strata run` needs)."""

import contextlib
import io
import os
import subprocess
import sys
import textwrap
import threading
import unittest
import uuid

from _support import strata_or_skip

import strata
from strata import App, Image, InvalidError

import remote_app
import remote_imports_app


class RemoteTest(unittest.TestCase):
    def setUp(self):
        os.environ.setdefault("STRATA_BIN", strata_or_skip(self))

    def test_remote_returns_the_value_and_streams_output(self):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            self.assertEqual(remote_app.square.remote(7), 49)
        self.assertIn("squaring 7\n", out.getvalue())
        self.assertIn("stderr of 7\n", err.getvalue())
        self.assertNotIn("stderr of 7", out.getvalue())
        self.assertEqual(remote_app.square.local(5), 25)

    def test_remote_runs_in_the_image_with_its_secrets(self):
        got = remote_app.where.remote(remote_app.Point(1, 2), scale=3)
        self.assertEqual(got, {
            "local": False,
            "greeting": "hello from the image",
            "token": "s3cret",
            "point": (3, 6),
            "json": "[1]",
        })
        self.assertTrue(strata.is_local())

    def test_an_exception_is_raised_here_with_the_remote_traceback(self):
        with self.assertRaises(remote_app.Boom) as caught:
            remote_app.fail.remote("it broke")
        self.assertEqual(str(caught.exception), "it broke")
        cause = str(caught.exception.__cause__)
        self.assertIn("in deeper", cause)
        self.assertIn("remote_app.py", cause)
        self.assertIn("Boom: it broke", cause)

    def test_map_runs_eight_calls_at_once(self):
        run_id = uuid.uuid4().hex
        # Every call waits for all eight to have started: run one after another, they fail.
        got = list(remote_app.meet.map([run_id] * 8, range(8), [8] * 8))
        self.assertEqual(got, list(range(8)))
        self.assertEqual(sorted(remote_app.square.map(range(4), order_outputs=False)), [0, 1, 4, 9])
        self.assertEqual(list(remote_app.square.starmap([(2,), (3,)])), [4, 9])
        results = list(remote_app.fail.map(["a", "b"], return_exceptions=True))
        self.assertEqual([type(r) for r in results], [remote_app.Boom, remote_app.Boom])
        self.assertEqual([str(r) for r in results], ["a", "b"])

    def test_exceptions_that_cannot_cross(self):
        # Coded cannot be rebuilt by pickle: a RemoteError names it, with the traceback.
        with self.assertRaises(strata.RemoteError) as caught:
            remote_app.fail_coded.remote()
        self.assertIn("fail_coded raised remote_app.Coded: 42: the answer", str(caught.exception))
        self.assertIn("in fail_coded", str(caught.exception.__cause__))
        # sys.exit in the function must not end this process.
        with self.assertRaises(strata.RemoteError) as caught:
            remote_app.exits.remote()
        self.assertIn("exits raised builtins.SystemExit: 3", str(caught.exception))

    def test_a_map_that_fails_stops_its_other_calls(self):
        run_id = uuid.uuid4().hex
        with self.assertRaises(remote_app.Boom):
            list(remote_app.first_fails.map([run_id] * 3, range(3), [3] * 3))
        left = Image.debian_slim("3.13").run(
            f"ls /b/{run_id}", volumes={"/b": remote_app.barrier_volume}, capture_output=True).stdout.split()
        self.assertEqual(sorted(left), ["started-1", "started-2"])

    def test_spawn(self):
        call = remote_app.square.spawn(6)
        self.assertEqual(call.get(timeout=300), 36)

    def test_timeout(self):
        with self.assertRaises(strata.FunctionTimeoutError) as caught:
            remote_app.sleepy.remote()
        self.assertIn("sleepy timed out after 2 s", str(caught.exception))

    def test_imports_raises_in_the_container(self):
        # Imported here without the module: the ImportError was skipped.
        with self.assertRaises(ModuleNotFoundError) as caught:
            remote_imports_app.uses_it.remote()
        self.assertIn("strata_test_module_that_no_image_has", str(caught.exception))
        self.assertIn("remote_imports_app.py", str(caught.exception.__cause__))

    def test_a_function_of_a_script(self):
        # A function defined in the script that runs (__main__): its `if __name__ == "__main__"`
        # block does not run in the container, and its classes cross back.
        script = textwrap.dedent("""\
            import strata as modal

            app = modal.App(image=modal.Image.debian_slim("3.13"))

            class Result:
                def __init__(self, value):
                    self.value = value

            @app.function()
            def compute(x):
                return Result(x + 1)

            if __name__ == "__main__":
                with app.run():
                    print("result", compute.remote(41).value)
            """)
        folder = os.path.dirname(os.path.abspath(__file__))
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(strata.__file__))))
        with open(os.path.join(self.tmp(), "script.py"), "w") as f:
            f.write(script)
        done = subprocess.run([sys.executable, f.name], capture_output=True, text=True, env=env, cwd=folder, timeout=600)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout, "result 42\n")

    def tmp(self):
        import tempfile
        d = tempfile.mkdtemp(prefix="strata-py-app-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
        return d


class DefinitionErrorsTest(unittest.TestCase):
    """Mistakes caught when the function is defined or called, before any container runs."""

    def test_errors(self):
        app = App(image=Image.debian_slim("3.13"))
        with self.assertRaisesRegex(InvalidError, "forget parentheses"):
            @app.function
            def f():
                pass
        with self.assertRaisesRegex(InvalidError, "module level"):
            @app.function()
            def nested():
                pass
        with self.assertRaisesRegex(InvalidError, "App.function.*cpu"):
            app.function(cpu=2)
        with self.assertRaisesRegex(InvalidError, "timeout"):
            app.function(timeout=0)
        # A module imported again in a container, where its .env is not: from_dotenv gives a
        # placeholder (the values are in the environment), rather than fail the import.
        os.environ["STRATA_CONTAINER"] = "1"
        try:
            self.assertIsInstance(strata.Secret.from_dotenv("/nonexistent-folder"), strata.Secret)
        finally:
            del os.environ["STRATA_CONTAINER"]
        with self.assertRaises(strata.NotFoundError):
            strata.Secret.from_dotenv("/nonexistent-folder")
        with self.assertRaisesRegex(InvalidError, r"square.remote\(square\): args\[0\] of type lock cannot be pickled"):
            remote_app.square.remote(threading.Lock())
        self.assertIn("square", remote_app.app.registered_functions)


if __name__ == "__main__":
    unittest.main()
