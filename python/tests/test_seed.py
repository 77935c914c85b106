"""The seed's snippets (seed_snippets/) build and run, against the stand-ins that
integration/pyclient_test.go serves. Run outside it, these tests skip, saying so; run by
it (the README's test command), none may skip. Heavy: real builds (apt from Debian's mirror,
pip from the stand-in index) and containers."""

import contextlib
import io
import json
import os
import subprocess
import tempfile
import unittest
import urllib.request

from _support import strata_or_skip, write

import strata
from strata import ImageBuildError

NEEDS = ("STRATA_SEED_INDEX", "STRATA_SEED_GIT", "STRATA_SEED_REGISTRY", "STRATA_SEED_PRIVATE",
         "STRATA_UV_IMAGE", "STRATA_MICROMAMBA_IMAGE", "STRATA_CDI_SPEC_DIRS")


class SeedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        missing = [n for n in NEEDS if not os.environ.get(n)]
        if missing:
            raise unittest.SkipTest(
                f"the seed's stand-ins are not served ({', '.join(missing)} unset): run these through "
                f"`STRATA_INTEGRATION=1 go test -run TestPythonClient ./integration/`"
            )

    def setUp(self):
        os.environ.setdefault("STRATA_BIN", strata_or_skip(self))

    def run_in(self, image, cmd):
        return image.run(cmd, capture_output=True).stdout

    def build_log(self, image, **kw):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            image.build(**kw)
        return err.getvalue()

    def chdir(self, folder):
        old = os.getcwd()
        os.chdir(folder)
        self.addCleanup(os.chdir, old)

    def test_base_images(self):
        from seed_snippets.images import image
        out = self.run_in(image, "cat /agi/README.md; echo $HALT_AND_CATCH_FIRE; cat /uv-invocations.txt")
        self.assertIn("# modal-labs/agi\n", out)
        self.assertIn("\n0\n", out)
        self.assertIn("argv: pip install --python /usr/bin/python --compile-bytecode torch<3\n", out)

    def test_uv(self):
        from seed_snippets.images import uv_image
        out = self.run_in(uv_image, ["cat", "/uv-invocations.txt"])
        self.assertIn("argv: pip install --python /usr/bin/python --compile-bytecode numpy pandas==2.2.0\n", out)

    def test_pip(self):
        from seed_snippets.images import pip_image
        out = self.run_in(pip_image, ["python", "-c", "import pandas, numpy; print(pandas.__version__, numpy.__version__)"])
        self.assertEqual(out, "2.2.0 1.26.4\n")

    def test_apt(self):
        from seed_snippets.images import apt_image
        out = self.run_in(apt_image, "git --version && curl --version | head -1")
        self.assertRegex(out, r"^git version 2\.[\s\S]*\ncurl \d")

    def test_env(self):
        from seed_snippets.images import env_image
        self.assertEqual(self.run_in(env_image, "echo $PORT"), "6443\n")

    def test_shell_commands(self):
        from seed_snippets.images import commands_image
        self.assertIn("# modal-labs/gpu-glossary", self.run_in(commands_image, ["cat", "/gpu-glossary/README.md"]))

    def test_python_function_at_build_time(self):
        from seed_snippets.images import function_image
        function_image.build()
        # The weights went to the volume, with the secret's token given; not into the image.
        got = strata.Image.debian_slim().run(
            "cat /cache/hub/models--segmind--small-sd/model.safetensors",
            volumes={"/cache": strata.Volume.from_name("hf-cache")}, capture_output=True).stdout
        self.assertEqual(got, "weights of segmind/small-sd, token given: True\n")
        out = self.run_in(function_image, "ls /root/.cache/huggingface 2>&1; python -c 'import diffusers, transformers; print(diffusers.__version__)'")
        self.assertIn("0.30.0\n", out)
        self.assertNotIn("models--", out)

    def test_add_local_dir(self):
        from seed_snippets.images import aws_image
        aws = tempfile.mkdtemp(prefix="strata-seed-aws-")
        write(aws, "config", "[default]\nregion = us-east-1\n")
        image = aws_image(aws)
        self.assertEqual(self.run_in(image, ["cat", "/root/.aws/config"]), "[default]\nregion = us-east-1\n")
        # Added when the container starts: a change shows at the next run, with nothing rebuilt.
        write(aws, "config", "[default]\nregion = eu-west-1\n")
        self.assertEqual(self.run_in(image, ["cat", "/root/.aws/config"]), "[default]\nregion = eu-west-1\n")

    def test_add_python_source(self):
        folder = tempfile.mkdtemp(prefix="strata-seed-src-")
        write(folder, "local_module.py", "def do_stuff():\n    return 'did stuff in the container'\n")
        self.chdir(folder)  # add_local_python_source finds modules under the working directory
        from seed_snippets.python_source import f
        self.assertEqual(f.remote(), "did stuff in the container")

    def test_from_public_registry(self):
        from seed_snippets.from_registry import fit_knn
        self.assertEqual(fit_knn.remote(), ["low", "high"])

    def test_from_private_registry(self):
        from seed_snippets.images import ecr_image, private_image
        for image in (private_image(), ecr_image()):
            out = self.run_in(image, ["python", "-c", "import sklearn; print(sklearn.__version__)"])
            self.assertEqual(out, "1.5.0\n")

    def test_from_dockerfile(self):
        folder = tempfile.mkdtemp(prefix="strata-seed-docker-")
        write(folder, "Dockerfile", f"FROM {os.environ['STRATA_SEED_REGISTRY']}/huanjason/scikit-learn\n")
        self.chdir(folder)
        from seed_snippets.from_dockerfile import fit
        self.assertEqual(fit.remote(), "1.5.0")

    def test_micromamba(self):
        from seed_snippets.images import numpyro_pymc_image
        out = self.run_in(numpyro_pymc_image, ["cat", "/micromamba-invocations.txt"])
        self.assertIn("argv: install pymc==5.10.4 numpyro==0.13.2 -c conda-forge --yes\n", out)

    def test_gpu_at_build_time(self):
        from seed_snippets.images import gpu_image
        self.assertIn("0.43.1", self.run_in(gpu_image, ["python", "-c", "import bitsandbytes; print(bitsandbytes.__version__)"]))
        # The step asks for an H100: a machine without one refuses it before anything runs.
        env = dict(os.environ, STRATA_CDI_SPEC_DIRS=tempfile.mkdtemp())
        done = subprocess.run([os.environ["STRATA_BIN"], "build", "-f", "-", "-t", "seed-no-gpu", "--force-build"], input=json.dumps(gpu_image.spec()),
                              capture_output=True, text=True, env=env)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("H100", done.stderr)

    def test_force_build(self):
        from seed_snippets.images import force_image
        self.build_log(force_image)
        log = self.build_log(force_image)
        self.assertRegex(log, r"#1 apt_install +cached")
        self.assertRegex(log, r"#2 pip_install +(building|done)")
        self.assertNotRegex(log, r"#2 pip_install +cached")
        # MODAL_FORCE_BUILD=1 is STRATA_FORCE_BUILD=1, tested in integration/engine_test.go.

    def test_imports(self):
        from seed_snippets import imports
        self.assertEqual(imports.my_function.remote(), "pandas")
        self.assertEqual(imports.my_other_function.remote(), ("2.2.0", "DataFrame"))

    def test_estargz_push(self):
        # The seed pushes with docker buildx --output compression=estargz; strata pushes so too.
        from seed_snippets.images import env_image
        ref = f"{os.environ['STRATA_SEED_REGISTRY']}/seed/env:estargz"
        with contextlib.redirect_stdout(io.StringIO()) as out:
            env_image.push(ref, compression="estargz")
        self.assertIn(ref + "@sha256:", out.getvalue())
        req = urllib.request.Request(f"http://{os.environ['STRATA_SEED_REGISTRY']}/v2/seed/env/manifests/estargz",
                                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        manifest = json.load(urllib.request.urlopen(req))
        for layer in manifest["layers"]:
            self.assertIn("containerd.io/snapshot/stargz/toc.digest", layer.get("annotations", {}), layer)


if __name__ == "__main__":
    unittest.main()
