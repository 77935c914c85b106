"""Image values, argument checks and errors: no strata binary needed."""

import json
import os
import unittest
from unittest import mock

from strata import Image, InvalidError, Secret, Volume


class ImageValueTest(unittest.TestCase):
    def setUp(self):
        patcher = mock.patch.dict(os.environ, {"STRATA_BIN": "/nonexistent/strata"})
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_every_method_returns_a_new_image(self):
        base = Image.debian_slim("3.13")
        before = base.spec()
        child = base.apt_install("git")
        self.assertIsNot(child, base)
        self.assertEqual(base.spec(), before)
        self.assertEqual(len(child.spec()["image"]), 2)
        with self.assertRaises(AttributeError):
            base._steps = ()
        with self.assertRaises(AttributeError):
            base.foo = 1

    def test_spec_is_a_copy(self):
        img = Image.debian_slim().env({"A": "1"})
        img.spec()["image"][1]["env"]["vars"]["A"] = "2"
        self.assertEqual(img.spec()["image"][1]["env"]["vars"]["A"], "1")

    def test_spec_is_json(self):
        img = Image.debian_slim("3.12").pip_install(["a==1", "b==2"], "c==3").run_commands("echo hi")
        self.assertEqual(
            json.loads(json.dumps(img.spec())),
            {"image": [
                {"debian_slim": {"python_version": "3.12"}},
                {"pip_install": {"packages": ["a==1", "b==2", "c==3"]}},
                {"run_commands": {"commands": ["echo hi"]}},
            ]},
        )

    def test_empty_arguments_return_the_same_image(self):
        img = Image.debian_slim()
        for m in (img.apt_install, img.pip_install, img.run_commands, img.dockerfile_commands, img.micromamba_install, img.uv_pip_install):
            self.assertIs(m(), img)

    def test_build_step_after_add_local_without_copy(self):
        img = Image.debian_slim().add_local_file(__file__, "/root/x.py").run_commands("ls")
        with self.assertRaises(InvalidError) as cm:
            img.spec()
        self.assertIn("An image tried to run a build step after using `image.add_local_*` to include local files.", str(cm.exception))
        self.assertIn("set `copy=True`", str(cm.exception))
        # with copy=True, or with only mounts at the end, it is fine
        Image.debian_slim().add_local_file(__file__, "/root/x.py", copy=True).run_commands("ls").spec()
        Image.debian_slim().add_local_file(__file__, "/root/x.py").add_local_dir(".", "/src").spec()

    def test_modal_errors(self):
        with self.assertRaisesRegex(InvalidError, "Package list for `Image.pip_install` cannot contain other arguments"):
            Image.debian_slim().pip_install("--upgrade", "six")
        with self.assertRaisesRegex(TypeError, "should be a string, not a float"):
            Image.debian_slim(3.13)
        with self.assertRaisesRegex(InvalidError, "Invalid Python version"):
            Image.debian_slim("4.0")
        with self.assertRaisesRegex(InvalidError, "apt_install: 3 must only contain strings"):
            Image.debian_slim().apt_install(3)
        with self.assertRaisesRegex(InvalidError, "Image ENV variables must be strings. Invalid keys: \\['B'\\]"):
            Image.debian_slim().env({"A": "1", "B": 2})
        with self.assertRaisesRegex(InvalidError, "only supports absolute remote_path"):
            Image.debian_slim().add_local_file("x", "rel/x")
        with self.assertRaisesRegex(InvalidError, "Invalid GPU count: abc"):
            Image.debian_slim().run_commands("ls", gpu="x:abc")
        with self.assertRaisesRegex(InvalidError, "only supports volumes that are strata.Volume"):
            Image.debian_slim().run_commands("ls", volumes={"/data": "name"})
        with self.assertRaisesRegex(InvalidError, "cannot be mounted at /tmp"):
            Image.debian_slim().run_commands("ls", volumes={"/tmp": Volume.from_name("v")})
        with self.assertRaisesRegex(InvalidError, "All secrets of an Image need to be strata.Secret"):
            Image.debian_slim().run_commands("ls", secrets=["name"])
        with self.assertRaisesRegex(InvalidError, "entrypoint_commands must be a list of strings."):
            Image.debian_slim().entrypoint("bash")
        with self.assertRaisesRegex(InvalidError, "Image has not been constructed yet"):
            Image.apt_install("git")
        with self.assertRaisesRegex(InvalidError, "Use a constructor"):
            Image()

    def test_parameters_without_a_spec_field_are_refused_by_name(self):
        with self.assertRaisesRegex(InvalidError, "parameter `ignore` is not supported by strata"):
            Image.debian_slim().add_local_dir(".", "/src", ignore=lambda p: True)
        with self.assertRaisesRegex(InvalidError, "parameter `force_build` is not supported"):
            Image.from_scratch(force_build=True)
        with self.assertRaisesRegex(InvalidError, "parameter `image_registry_config` is not supported"):
            Image.from_registry("python:3.13", image_registry_config=object())
        with self.assertRaisesRegex(TypeError, "use the singular 'secret' argument"):
            Image.from_aws_ecr("x/y:1", secrets=[])

    def test_layer_options(self):
        s = Secret.from_name("creds")
        img = Image.debian_slim().apt_install("git", force_build=True, env={"A": "1", "B": None}, secrets=[s], gpu="H100")
        self.assertEqual(
            img.spec()["image"][1]["apt_install"],
            {"packages": ["git"], "force_build": True, "env": {"A": "1"}, "secrets": ["creds"], "gpu": "H100"},
        )

    def test_pipe(self):
        img = Image.debian_slim().pipe(lambda i, p: i.pip_install(p), "six==1.16.0")
        self.assertEqual(img.spec()["image"][1], {"pip_install": {"packages": ["six==1.16.0"]}})

    def test_imports_skips_import_errors_locally(self):
        with Image.debian_slim().imports():
            import a_module_that_only_the_image_has  # noqa: F401
        with self.assertRaises(ZeroDivisionError):
            with Image.debian_slim().imports():
                1 / 0


class SecretTest(unittest.TestCase):
    def test_from_dict_name_is_a_content_hash_and_values_stay_out_of_the_spec(self):
        a = Secret.from_dict({"TOKEN": "s3cr3t-value", "DROP": None})
        b = Secret.from_dict({"TOKEN": "s3cr3t-value"})
        c = Secret.from_dict({"TOKEN": "other"})
        self.assertEqual(a.name, b.name)
        self.assertNotEqual(a.name, c.name)
        spec = json.dumps(Image.debian_slim().run_commands("env", secrets=[a]).spec())
        self.assertNotIn("s3cr3t-value", spec)
        self.assertNotIn("s3cr3t-value", repr(a))
        self.assertIn(a.name, spec)

    def test_from_dotenv(self):
        import tempfile

        d = tempfile.mkdtemp()
        with open(os.path.join(d, ".env"), "w") as f:
            f.write('# comment\nexport A=1\nB="two\\nlines"\nC=plain # trailing\n')
        s = Secret.from_dotenv(d)
        self.assertEqual(s._values, {"A": "1", "B": "two\nlines", "C": "plain"})
        self.assertEqual(Secret.from_dotenv(os.path.join(d, ".env")).name, s.name)

    def test_names_are_checked(self):
        with self.assertRaisesRegex(InvalidError, "Invalid Secret name"):
            Secret.from_name("bad name")
        with self.assertRaisesRegex(InvalidError, "Invalid Volume name"):
            Volume.from_name("/abs")


if __name__ == "__main__":
    unittest.main()
