"""A real build and run (heavy: one build of a small image on the debian_slim base).

Needs the strata binary and what `strata build` needs (root, or a rootless setup, runc,
overlayfs). STRATA_HOME, when set, is the store used; a store whose Debian base is already
bootstrapped makes this fast.
"""

import hashlib
import json
import os
import platform
import unittest

from _support import strata_or_skip

from strata import Image, Secret

OUTPUT = "/out/result.json"
SUFFIX = "!"


def shout(word):
    return word.upper() + SUFFIX


def build_step(path, word, secret_key):
    """Runs in the image at build time: what it writes becomes the layer."""
    import sys

    value = os.environ.get(secret_key, "")
    with open(path, "w") as f:
        json.dump({
            "shout": shout(word),
            "python": platform.python_version(),
            "executable": sys.executable,
            "secret_sha256": hashlib.sha256(value.encode()).hexdigest(),
            "base": open("/out/base.txt").read().strip(),
        }, f)


SECRET_VALUE = 'not "so" secret\nvalue'


class BuildAndRunTest(unittest.TestCase):
    def test_run_function_output_is_in_the_image(self):
        strata = strata_or_skip(self)
        os.environ.setdefault("STRATA_BIN", strata)
        image = (
            Image.debian_slim("3.13")
            .run_commands("mkdir -p /out && echo from-run-commands > /out/base.txt")
            .run_function(
                build_step,
                args=(OUTPUT, "strata"),
                kwargs={"secret_key": "PY_TEST_SECRET"},
                secrets=[Secret.from_dict({"PY_TEST_SECRET": SECRET_VALUE})],
                timeout=300,
            )
        )
        name = image.build(name="strata-py-test")
        self.assertEqual(name, "strata-py-test")
        done = image.run(["cat", OUTPUT], name=name, capture_output=True)
        got = json.loads(done.stdout)
        self.assertEqual(got["shout"], "STRATA!")
        self.assertTrue(got["python"].startswith("3.13."), got)
        self.assertEqual(got["base"], "from-run-commands")
        self.assertEqual(got["secret_sha256"], hashlib.sha256(SECRET_VALUE.encode()).hexdigest())
        # A string command runs with sh -c; a failing one raises unless check=False.
        done = image.run("test -f /out/base.txt && echo yes", name=name, capture_output=True)
        self.assertEqual(done.stdout.strip(), "yes")
        self.assertEqual(image.run(["false"], name=name, check=False, capture_output=True).returncode, 1)


if __name__ == "__main__":
    unittest.main()
