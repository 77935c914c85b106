"""Method chains covering every Image method, each with its hand-written YAML equivalent.

Local paths are relative: the spec files are written into the fixtures folder (_support.make_fixtures).
The Go equivalents are in testdata/goequiv/main.go, in the same order.
"""

from strata import Image, Secret, Volume

CREDS = Secret.from_name("reg-creds")
TOKEN = Secret.from_name("gh-token")
CACHE = Volume.from_name("pip-cache", create_if_missing=True)


def chains():
    """[(name, Image, YAML)]"""
    return [
        (
            "debian_steps",
            Image.debian_slim("3.13")
            .apt_install("git", ["curl", "jq"])
            .pip_install("six==1.16.0", "attrs==23.1.0", index_url="http://127.0.0.1:1/simple", pre=True, extra_options="--no-deps")
            .env({"A": "1", "B": "two words"})
            .workdir("/app")
            .run_commands("echo one", "echo two", env={"X": "y"}, secrets=[CREDS], gpu="a10g:2", volumes={"/root/.cache/pip": CACHE}, force_build=True)
            .dockerfile_commands("RUN echo hi", "COPY /config.json /etc/config.json", context_files={"/config.json": "config.json"})
            .entrypoint(["/bin/sh", "-c"])
            .shell(["/bin/bash", "-c"])
            .cmd(["python3"]),
            """
            image:
              - debian_slim: {python_version: "3.13"}
              - apt_install: {packages: [git, curl, jq]}
              - pip_install: {packages: ["six==1.16.0", "attrs==23.1.0"], index_url: "http://127.0.0.1:1/simple", pre: true, extra_options: "--no-deps"}
              - env: {vars: {A: "1", B: "two words"}}
              - workdir: {path: /app}
              - run_commands:
                  commands: ["echo one", "echo two"]
                  env: {X: "y"}
                  secrets: [reg-creds]
                  gpu: "a10g:2"
                  volumes: {/root/.cache/pip: pip-cache}
                  force_build: true
              - dockerfile_commands: {commands: ["RUN echo hi", "COPY /config.json /etc/config.json"], context_files: {/config.json: config.json}}
              - entrypoint: {entrypoint_commands: [/bin/sh, -c]}
              - shell: {shell_commands: [/bin/bash, -c]}
              - cmd: {cmd: [python3]}
            """,
        ),
        (
            "python_packages",
            Image.debian_slim()
            .uv_pip_install("six==1.16.0", requirements=["requirements.txt"], uv_version="0.9.5", find_links="/wheels")
            .uv_sync("uvproj", groups=["dev"], extras=["x"], frozen=False, extra_options="--verbose")
            .pip_install_from_requirements("requirements.txt", "/wheels", extra_index_url="http://127.0.0.1:1/simple")
            .pip_install_from_pyproject("pyproj/pyproject.toml", ["dev"])
            .pip_install_private_repos("github.com/org/private@v1", git_user="bot", secrets=[TOKEN])
            .poetry_install_from_file("poetry/pyproject.toml", with_=["dev"], poetry_version="1.8.3", only=["main"]),
            """
            image:
              - debian_slim: {}
              - uv_pip_install: {packages: ["six==1.16.0"], requirements: [requirements.txt], uv_version: "0.9.5", find_links: /wheels}
              - uv_sync: {uv_project_dir: uvproj, groups: [dev], extras: [x], frozen: false, extra_options: "--verbose"}
              - pip_install_from_requirements: {requirements_txt: requirements.txt, find_links: /wheels, extra_index_url: "http://127.0.0.1:1/simple"}
              - pip_install_from_pyproject: {pyproject_toml: pyproj/pyproject.toml, optional_dependencies: [dev]}
              - pip_install_private_repos: {repositories: ["github.com/org/private@v1"], git_user: bot, secrets: [gh-token]}
              - poetry_install_from_file: {poetry_pyproject_toml: poetry/pyproject.toml, with_: [dev], only: [main], poetry_version: "1.8.3"}
            """,
        ),
        (
            "local_files",
            Image.debian_slim("3.11")
            .add_local_file("config.json", "/etc/app/", copy=True)
            .add_local_dir("assets", "/assets", copy=True, ignore=["*.log"])
            .run_commands("ls /assets")
            .add_local_python_source("mymod"),
            """
            image:
              - debian_slim: {python_version: "3.11"}
              - add_local_file: {local_path: config.json, remote_path: /etc/app/, copy: true}
              - add_local_dir: {local_path: assets, remote_path: /assets, copy: true, ignore: ["*.log"]}
              - run_commands: {commands: ["ls /assets"]}
              - add_local_python_source: {modules: [mymod]}
            """,
        ),
        (
            "micromamba",
            Image.micromamba("3.12").micromamba_install("numpy", "scipy", spec_file="env.yml", channels=["conda-forge"]),
            """
            image:
              - micromamba: {python_version: "3.12"}
              - micromamba_install: {packages: [numpy, scipy], spec_file: env.yml, channels: [conda-forge]}
            """,
        ),
        (
            "from_registry",
            Image.from_registry("python:3.13-slim", secret=CREDS, add_python="3.12", setup_dockerfile_commands=["RUN echo setup"]).pip_install("six==1.16.0"),
            """
            image:
              - from_registry: {tag: "python:3.13-slim", secret: reg-creds, add_python: "3.12", setup_dockerfile_commands: ["RUN echo setup"]}
              - pip_install: {packages: ["six==1.16.0"]}
            """,
        ),
        (
            "from_aws_ecr",
            Image.from_aws_ecr("123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1", CREDS),
            """
            image:
              - from_aws_ecr: {tag: "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1", secret: reg-creds}
            """,
        ),
        (
            "from_gcp_artifact_registry",
            Image.from_gcp_artifact_registry("us-docker.pkg.dev/proj/repo/app:v1", CREDS, force_build=True),
            """
            image:
              - from_gcp_artifact_registry: {tag: "us-docker.pkg.dev/proj/repo/app:v1", secret: reg-creds, force_build: true}
            """,
        ),
        (
            "from_dockerfile",
            Image.from_dockerfile("docker/Dockerfile", context_dir="docker", build_args={"V": "2"}).run_commands("cat /data.txt"),
            """
            image:
              - from_dockerfile: {path: docker/Dockerfile, context_dir: docker, build_args: {V: "2"}}
              - run_commands: {commands: ["cat /data.txt"]}
            """,
        ),
        (
            "from_scratch",
            Image.from_scratch().add_local_file("config.json", "/config.json", copy=True),
            """
            image:
              - from_scratch: {}
              - add_local_file: {local_path: config.json, remote_path: /config.json, copy: true}
            """,
        ),
    ]
