"""Finding the strata binary, its version, and the secret and volume stores."""

import json
import os
import shutil
import stat
import subprocess
import tempfile
import unittest
from unittest import mock

from _support import strata_or_skip

import strata
from strata import Image, NotFoundError, Secret, StrataNotFoundError, VersionError, Volume, _cli


def fake_strata(output: str) -> str:
    d = tempfile.mkdtemp(prefix="strata-py-fake-")
    path = os.path.join(d, "strata")
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\necho '{output}'\n")
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path


class FindBinaryTest(unittest.TestCase):
    def setUp(self):
        _cli._checked.clear()
        self.addCleanup(_cli._checked.clear)

    def test_missing_binary_says_how_to_fix_it(self):
        env = {k: v for k, v in os.environ.items() if k != "STRATA_BIN"}
        env["PATH"] = tempfile.mkdtemp()
        with mock.patch.dict(os.environ, env, clear=True):
            with self.assertRaises(StrataNotFoundError) as cm:
                Image.debian_slim().keys()
        self.assertIn("No `strata` binary on PATH and STRATA_BIN is not set", str(cm.exception))
        self.assertIn("CGO_ENABLED=0 go build -o /usr/local/bin/ ./cmd/...", str(cm.exception))

    def test_strata_bin_that_does_not_exist(self):
        with mock.patch.dict(os.environ, {"STRATA_BIN": "/nonexistent/strata"}):
            with self.assertRaisesRegex(StrataNotFoundError, "STRATA_BIN=/nonexistent/strata does not exist"):
                Image.debian_slim().keys()

    def test_version_mismatch(self):
        path = fake_strata("strata builder 1999.01")
        with mock.patch.dict(os.environ, {"STRATA_BIN": path}):
            with self.assertRaises(VersionError) as cm:
                Image.debian_slim().build("x")
        msg = str(cm.exception)
        self.assertIn("strata builder 1999.01", msg)
        self.assertIn(strata.SUPPORTED_BUILDERS[0], msg)

    def test_not_strata(self):
        path = fake_strata("hello")
        with mock.patch.dict(os.environ, {"STRATA_BIN": path}):
            with self.assertRaisesRegex(VersionError, "does not look like strata"):
                Image.debian_slim().keys()

    def test_the_real_binary_is_supported(self):
        path = strata_or_skip(self)
        self.assertIn(_cli.builder_version(path), strata.SUPPORTED_BUILDERS)


class PlumbingTest(unittest.TestCase):
    """build, run and push pass the right arguments (a fake strata records them)."""

    def setUp(self):
        d = tempfile.mkdtemp(prefix="strata-py-fake-")
        self.log = os.path.join(d, "calls")
        self.path = os.path.join(d, "strata")
        with open(self.path, "w") as f:
            f.write(f"""#!/bin/sh
echo "$*" >> {self.log}
if [ "$2" = "-f" ] && [ "$3" = "-" ]; then cat > {self.log}.stdin; fi
case "$1" in
  version) echo "strata builder {strata.SUPPORTED_BUILDERS[0]}" ;;
  build) echo "#0 debian_slim cached abc" >&2; echo "$5 sha256:feed" ;;
  push) echo "pushed" ;;
  secret) echo "NAME  KEYS" ;;
  volume) echo ;;
esac
""")
        os.chmod(self.path, 0o755)
        patcher = mock.patch.dict(os.environ, {"STRATA_BIN": self.path})
        patcher.start()
        self.addCleanup(patcher.stop)
        _cli._checked.clear()
        self.addCleanup(_cli._checked.clear)

    def calls(self):
        with open(self.log) as f:
            return [l.split() for l in f.read().splitlines()]

    def test_build_run_push(self):
        img = Image.debian_slim().run_commands("ls", secrets=[Secret.from_dict({"A": "b"})],
                                                 volumes={"/data": Volume.from_name("vol", create_if_missing=True)})
        self.assertEqual(img.build("app", force_build=True), "app")
        img.run(["echo", "hi"], name="app", env={"E": "1"}, gpu="any", workdir="/w", capture_output=True)
        img.push("registry.example/app:v1", name="app", compression="zstd")
        calls = self.calls()
        self.assertEqual(calls[0], ["version"])
        self.assertIn(["secret", "ls"], calls)
        self.assertTrue(any(c[:3] == ["secret", "create", img._objects[0].name] for c in calls), calls)
        self.assertIn(["volume", "create", "vol"], calls)
        build = [c for c in calls if c[0] == "build"][0]
        self.assertEqual(build[1], "-f")
        self.assertEqual(build[2], "-")
        with open(self.log + ".stdin") as f:
            self.assertEqual(json.load(f), img.spec())
        self.assertEqual(build[3:], ["--progress", "plain", "-t", "app", "--force-build"])
        run = [c for c in calls if c[0] == "run"][0]
        self.assertEqual(run, ["run", "app", "-e", "E=1", "--gpus", "any", "-w", "/w", "--", "echo", "hi"])
        self.assertEqual([c for c in calls if c[0] == "push"][0], ["push", "app", "registry.example/app:v1", "--compression", "zstd"])

    def test_default_name_follows_the_spec(self):
        a, b = Image.debian_slim("3.12"), Image.debian_slim("3.13")
        self.assertNotEqual(a.build(), b.build())
        self.assertEqual(a.build(), Image.debian_slim("3.12").build())


class StoresTest(unittest.TestCase):
    """Secrets and volumes in a store of their own (no root needed)."""

    def setUp(self):
        path = strata_or_skip(self)
        home = tempfile.mkdtemp(prefix="strata-py-home-")
        self.addCleanup(shutil.rmtree, home, True)
        patcher = mock.patch.dict(os.environ, {"STRATA_BIN": path, "STRATA_HOME": home})
        patcher.start()
        self.addCleanup(patcher.stop)
        _cli._checked.clear()

    def test_from_dict_is_created_once_with_its_keys(self):
        s = Secret.from_dict({"TOKEN": 'a "quoted" value\\n with\nnewline', "OTHER": "x"})
        s._ensure()
        s._ensure()  # already there: nothing to do
        listing = _cli.run(["secret", "ls"])
        self.assertIn(s.name, listing)
        self.assertIn("TOKEN", listing)
        self.assertNotIn("quoted", listing)

    def test_from_name_must_exist(self):
        with self.assertRaisesRegex(NotFoundError, "Secret 'nope' not found: create it with `strata secret create nope"):
            Secret.from_name("nope")._ensure()
        _cli.run(["secret", "create", "have", "A=1"])
        Secret.from_name("have", required_keys=["A"])._ensure()
        with self.assertRaisesRegex(NotFoundError, "missing required keys: B"):
            Secret.from_name("have", required_keys=["A", "B"])._ensure()

    def test_volumes(self):
        with self.assertRaisesRegex(NotFoundError, "Volume 'data' not found"):
            Volume.from_name("data")._ensure()
        Volume.from_name("data", create_if_missing=True)._ensure()
        self.assertIn("data", _cli.lines(["volume", "ls"]))
        Volume.from_name("data")._ensure()


if __name__ == "__main__":
    unittest.main()
