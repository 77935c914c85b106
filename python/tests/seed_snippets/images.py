"""The seed's image definitions, section by section."""

import strata as modal

from . import GIT, INDEX, PRIVATE

# ## Base Images
image = (
    modal.Image.debian_slim(python_version="3.13")
    .apt_install("git")
    .uv_pip_install("torch<3")  # uv: the test double
    .env({"HALT_AND_CATCH_FIRE": "0"})
    .run_commands(f"git clone {GIT}/modal-labs/agi")  # stand-in for https://github.com/modal-labs/agi
)

# ### With uv (Recommended)
uv_image = (
    modal.Image.debian_slim()
    .uv_pip_install("pandas==2.2.0", "numpy")  # uv: the test double
)

# ### With pip
pip_image = (
    modal.Image.debian_slim(python_version="3.13")
    .pip_install("pandas==2.2.0", "numpy", index_url=INDEX)  # stand-in for PyPI
)

# ## Installing System Packages (from Debian's mirror, which these machines reach)
apt_image = modal.Image.debian_slim().apt_install("git", "curl")

# ## Setting Environment Variables
env_image = modal.Image.debian_slim().env({"PORT": "6443"})

# ## Running Shell Commands
commands_image = (
    modal.Image.debian_slim()
    .apt_install("git")
    .run_commands(f"git clone {GIT}/modal-labs/gpu-glossary")  # stand-in for https://github.com/modal-labs/gpu-glossary
)


# ## Running Python Functions at Build Time
def download_models():
    import diffusers
    model_name = "segmind/small-sd"
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(model_name)


hf_cache = modal.Volume.from_name("hf-cache")

function_image = (
    modal.Image.debian_slim()
    .pip_install("diffusers[torch]", "transformers", index_url=INDEX)  # stand-in for PyPI
    .run_function(
        download_models,
        secrets=[modal.Secret.from_name("huggingface-secret")],
        volumes={"/root/.cache/huggingface": hf_cache},
    )
)


# ## Adding Local Files: add files or directories
def aws_image(aws_folder):
    # The seed's "/user/erikbern/.aws" is a folder of the test's.
    return modal.Image.debian_slim().add_local_dir(
        aws_folder,
        remote_path="/root/.aws"
    )


# ### From Private Registry
def private_image():
    secret = modal.Secret.from_name("my-docker-secret")
    image = modal.Image.from_registry(
        f"{PRIVATE}/private-repo/image:tag",  # stand-in for a private Docker Hub repository
        secret=secret
    )
    return image


def ecr_image():
    aws_secret = modal.Secret.from_name("my-aws-secret")
    image = modal.Image.from_aws_ecr(
        f"{PRIVATE}/my-private-registry:latest",  # stand-in for 000000000000.dkr.ecr.us-east-1.amazonaws.com/my-private-registry:latest
        secret=aws_secret,
    )
    return image


# ## Using Micromamba (micromamba: the test double)
numpyro_pymc_image = (
    modal.Image.micromamba()
    .micromamba_install("pymc==5.10.4", "numpyro==0.13.2", channels=["conda-forge"])
)

# ## GPU Support at Build Time (the GPU: a CDI spec of a stand-in H100)
gpu_image = (
    modal.Image.debian_slim()
    .pip_install("bitsandbytes", gpu="H100", index_url=INDEX)  # stand-in for PyPI
)

# ### Force Rebuild
force_image = (
    modal.Image.debian_slim()
    .apt_install("git")
    .pip_install("slack-sdk", force_build=True, index_url=INDEX)  # stand-in for PyPI
)
