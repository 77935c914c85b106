package strata_test

import (
	"context"
	"fmt"
	"log"

	"github.com/strata-build/strata"
	"github.com/strata-build/strata/spec"
)

// show resolves an image (reading local files under testdata) and prints its layers; the
// debian_slim base's own setup lines are left out for brevity.
func show(img strata.Image) {
	plan, err := img.Resolve(context.Background(), strata.WithDir("testdata"), strata.WithHashCache(""))
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range plan.Layers {
		fmt.Println(l.Method)
		if l.Base != nil && l.Base.Kind == spec.BaseDebian {
			continue
		}
		for _, in := range l.Instructions {
			fmt.Println("  " + in.String())
		}
	}
	for _, m := range plan.Mounts {
		fmt.Printf("%s: %d files at %s, mounted at start\n", m.Method, len(m.Files), m.Target)
	}
}

// The seed's first example. Build it with img.Build(ctx) or `strata build`.
func Example() {
	img := strata.DebianSlim("3.13").
		AptInstall("git").
		UvPipInstall("torch<3").
		Env(map[string]string{"HALT_AND_CATCH_FIRE": "0"}).
		RunCommands("git clone https://github.com/modal-labs/agi")
	show(img)
	// Output:
	// debian_slim
	// apt_install
	//   RUN apt-get update
	//   RUN DEBIAN_FRONTEND=noninteractive apt-get install -y git && apt-get clean && rm -rf /var/lib/apt/lists/*
	// uv_pip_install
	//   COPY --from=ghcr.io/astral-sh/uv:0.9.5 /uv /.uv/uv
	//   RUN /.uv/uv pip install --python $(command -v python) --compile-bytecode 'torch<3'
	// env
	//   ENV HALT_AND_CATCH_FIRE=0
	// run_commands
	//   RUN git clone https://github.com/modal-labs/agi
}

func ExampleImage_UvPipInstall() {
	show(strata.DebianSlim("").UvPipInstall("pandas==2.2.0", "numpy"))
	// Output:
	// debian_slim
	// uv_pip_install
	//   COPY --from=ghcr.io/astral-sh/uv:0.9.5 /uv /.uv/uv
	//   RUN /.uv/uv pip install --python $(command -v python) --compile-bytecode numpy pandas==2.2.0
}

func ExampleImage_PipInstall() {
	img := strata.DebianSlim("3.13").PipInstall("pandas==2.2.0", "numpy")
	show(img.PipInstallWith(strata.PipInstallOptions{
		Packages:   []string{"mypkg"},
		PipOptions: strata.PipOptions{IndexURL: "http://127.0.0.1:8080/simple", Pre: true},
	}))
	// Output:
	// debian_slim
	// pip_install
	//   RUN python -m pip install numpy pandas==2.2.0
	// pip_install
	//   RUN python -m pip install mypkg --index-url http://127.0.0.1:8080/simple --pre
}

func ExampleImage_AptInstall() {
	show(strata.FromScratch().AptInstall("git", "curl"))
	// Output:
	// from_scratch
	// apt_install
	//   RUN apt-get update
	//   RUN DEBIAN_FRONTEND=noninteractive apt-get install -y git curl && apt-get clean && rm -rf /var/lib/apt/lists/*
}

func ExampleImage_Env() {
	show(strata.FromScratch().Env(map[string]string{"PORT": "6443", "GREETING": "hello world"}))
	// Output:
	// from_scratch
	// env
	//   ENV GREETING='hello world'
	//   ENV PORT=6443
}

func ExampleImage_RunCommands() {
	show(strata.FromScratch().
		AptInstall("git").
		RunCommands("git clone https://github.com/modal-labs/gpu-glossary").
		RunCommandsWith(strata.RunCommandsOptions{
			Commands:     []string{"pip download -d /wheels torch"},
			Volumes:      map[string]string{"/root/.cache/pip": "pip-cache"},
			LayerOptions: strata.LayerOptions{Secrets: []string{"huggingface-secret"}},
		}))
	// Output:
	// from_scratch
	// apt_install
	//   RUN apt-get update
	//   RUN DEBIAN_FRONTEND=noninteractive apt-get install -y git && apt-get clean && rm -rf /var/lib/apt/lists/*
	// run_commands
	//   RUN git clone https://github.com/modal-labs/gpu-glossary
	// run_commands
	//   RUN pip download -d /wheels torch
}

// The build-time part of the seed's model-download example; the run_function step itself
// arrives with Go build functions.
func ExampleLayerOptions() {
	show(strata.DebianSlim("").PipInstallWith(strata.PipInstallOptions{
		Packages:     []string{"diffusers[torch]", "transformers"},
		LayerOptions: strata.LayerOptions{Secrets: []string{"huggingface-secret"}, GPU: "H100"},
	}))
	// Output:
	// debian_slim
	// pip_install
	//   RUN python -m pip install 'diffusers[torch]' transformers
}

func ExampleImage_AddLocalDir() {
	// Mounted when a container starts: no layer, so changing the files never rebuilds.
	show(strata.FromScratch().AddLocalDir("aws", "/root/.aws"))
	// Copied into a layer, so build steps may follow.
	show(strata.FromScratch().
		AddLocalDirWith(strata.AddLocalDirOptions{LocalPath: "aws", RemotePath: "/root/.aws", Copy: true}).
		RunCommands("cat /root/.aws/config"))
	// Output:
	// from_scratch
	// add_local_dir: 2 files at /root/.aws, mounted at start
	// from_scratch
	// add_local_dir
	//   COPY . /
	// run_commands
	//   RUN cat /root/.aws/config
}

func ExampleImage_AddLocalPythonSource() {
	show(strata.DebianSlim("3.13").AddLocalPythonSource("local_module"))
	// Output:
	// debian_slim
	// add_local_python_source: 2 files at /root, mounted at start
}

func ExampleFromRegistry() {
	show(strata.FromRegistry("huanjason/scikit-learn"))
	show(strata.FromRegistryWith(strata.FromRegistryOptions{
		Tag:       "private-repo/image:tag",
		Secret:    "my-docker-secret",
		AddPython: "3.12",
	}))
	// Output:
	// from_registry
	// from_registry
	//   COPY /python/. /usr/local
	//   RUN ln -s /usr/local/bin/python3 /usr/local/bin/python
	//   ENV TERMINFO_DIRS=/etc/terminfo:/lib/terminfo:/usr/share/terminfo:/usr/lib/terminfo
}

func ExampleFromAWSECR() {
	show(strata.FromAWSECR("000000000000.dkr.ecr.us-east-1.amazonaws.com/my-private-registry:latest", "my-aws-secret"))
	// Output:
	// from_aws_ecr
}

func ExampleFromDockerfile() {
	// COPY reads from ContextDir, by default the working directory (or the spec file's folder).
	// Each instruction is a layer, cached on its own, as docker build caches them.
	show(strata.FromDockerfileWith(strata.FromDockerfileOptions{Path: "sklearn/Dockerfile", ContextDir: "sklearn"}).
		PipInstall("numpy"))
	// Output:
	// from_dockerfile
	// from_dockerfile
	//   RUN pip install scikit-learn
	// from_dockerfile
	//   COPY fit.py /app/fit.py
	// from_dockerfile
	//   WORKDIR /app
	// pip_install
	//   RUN python -m pip install numpy
}

func ExampleMicromamba() {
	show(strata.Micromamba("").MicromambaInstallWith(strata.MicromambaInstallOptions{
		Packages: []string{"pymc==5.10.4", "numpyro==0.13.2"},
		Channels: []string{"conda-forge"},
	}))
	// Output:
	// micromamba
	//   SHELL ["/usr/local/bin/_dockerfile_shell.sh"]
	//   ENV MAMBA_DOCKERFILE_ACTIVATE=1
	//   RUN micromamba install -n base -y python=3.13 pip -c conda-forge
	// micromamba_install
	//   RUN micromamba install pymc==5.10.4 numpyro==0.13.2 -c conda-forge --yes
}

func ExampleLayerOptions_forceBuild() {
	img := strata.DebianSlim("").
		AptInstall("git").
		PipInstallWith(strata.PipInstallOptions{Packages: []string{"slack-sdk"}, LayerOptions: strata.LayerOptions{ForceBuild: true}}).
		RunCommands("echo done")
	plan, err := img.Resolve(context.Background(), strata.WithHashCache(""))
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range plan.Layers {
		fmt.Println(l.Method, l.ForceBuild)
	}
	// Output:
	// debian_slim false
	// apt_install false
	// pip_install true
	// run_commands true
}

func ExampleImage_Pipe() {
	withTools := func(img strata.Image) strata.Image { return img.AptInstall("git", "curl") }
	show(strata.FromScratch().Pipe(withTools))
	// Output:
	// from_scratch
	// apt_install
	//   RUN apt-get update
	//   RUN DEBIAN_FRONTEND=noninteractive apt-get install -y git curl && apt-get clean && rm -rf /var/lib/apt/lists/*
}
