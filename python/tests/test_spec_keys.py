"""The Python, YAML and Go forms of an image give identical cache keys under `strata spec --json`."""

import json
import os
import shutil
import subprocess
import textwrap
import unittest

import chains
from _support import HERE, make_fixtures, spec_keys, strata_or_skip

from strata import Image


class SpecKeysTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = make_fixtures()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def write_pair(self, name, image, yaml):
        py = os.path.join(self.dir, f"{name}.py.json")
        with open(py, "w") as f:
            json.dump(image.spec(), f)
        ya = os.path.join(self.dir, f"{name}.yaml")
        with open(ya, "w") as f:
            f.write(textwrap.dedent(yaml))
        return py, ya

    def test_python_and_yaml_forms_give_identical_keys(self):
        strata = strata_or_skip(self)
        seen_methods = set()
        for name, image, yaml in chains.chains():
            with self.subTest(chain=name):
                py, ya = self.write_pair(name, image, yaml)
                got, want = spec_keys(strata, py), spec_keys(strata, ya)
                self.assertEqual(got, want)
                seen_methods.update(m for m, _ in got)
        every = {
            "debian_slim", "micromamba", "from_registry", "from_aws_ecr", "from_gcp_artifact_registry",
            "from_dockerfile", "from_scratch", "apt_install", "pip_install", "uv_pip_install", "uv_sync",
            "pip_install_from_requirements", "pip_install_from_pyproject", "pip_install_private_repos",
            "poetry_install_from_file", "micromamba_install", "run_commands", "env", "workdir",
            "entrypoint", "cmd", "shell", "dockerfile_commands", "add_local_file", "add_local_dir",
        }
        # add_local_python_source without copy is a runtime mount, not a layer: it is in the spec
        # (checked below) but not among the layers.
        self.assertEqual(every - seen_methods, set())

    def test_a_change_changes_the_key(self):
        strata = strata_or_skip(self)
        a, _ = self.write_pair("change-a", Image.debian_slim().pip_install("six==1.16.0"), "image: []")
        b, _ = self.write_pair("change-b", Image.debian_slim().pip_install("six==1.17.0"), "image: []")
        ka, kb = spec_keys(strata, a), spec_keys(strata, b)
        self.assertEqual(ka[0], kb[0])
        self.assertNotEqual(ka[1], kb[1])

    def test_keys_from_the_working_directory_match(self):
        """image.keys() writes the spec elsewhere with paths made absolute: the keys stay the same."""
        strata = strata_or_skip(self)
        os.environ.setdefault("STRATA_BIN", strata)
        cwd = os.getcwd()
        os.chdir(self.dir)
        try:
            for name, image, yaml in chains.chains():
                with self.subTest(chain=name):
                    _, ya = self.write_pair(name, image, yaml)
                    got = [(l["method"], l["key"]) for l in image.keys()]
                    self.assertEqual(got, spec_keys(strata, ya))
        finally:
            os.chdir(cwd)

    def test_go_form_gives_identical_keys(self):
        """testdata/goequiv builds the same chains in Go and prints their keys."""
        strata_or_skip(self)
        go = shutil.which("go")
        repo = os.path.dirname(os.path.dirname(HERE))
        if not go or not os.path.exists(os.path.join(repo, "go.mod")):
            self.skipTest("needs the go toolchain and the strata checkout around python/")
        exe = os.path.join(self.dir, "goequiv")
        built = subprocess.run(
            [go, "build", "-o", exe, "./python/tests/testdata/goequiv"],
            cwd=repo, capture_output=True, text=True, timeout=600, env={**os.environ, "GOPROXY": "off"},
        )
        if built.returncode != 0:
            self.skipTest(f"the Go form could not be compiled (is the Go tree mid-edit?): {built.stderr[-2000:]}")
        out = subprocess.run([exe, self.dir], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            self.fail(f"goequiv failed: {out.stderr}")
        go_keys = json.loads(out.stdout)
        strata = strata_or_skip(self)
        for name, image, yaml in chains.chains():
            with self.subTest(chain=name):
                py, _ = self.write_pair(name, image, yaml)
                self.assertIn(name, go_keys)
                self.assertEqual([k for _, k in spec_keys(strata, py)], go_keys[name])


if __name__ == "__main__":
    unittest.main()
