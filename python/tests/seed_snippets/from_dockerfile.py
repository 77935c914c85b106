"""### From Dockerfile (its FROM line names the stand-in registry)"""

import strata as modal

app = modal.App()

image = modal.Image.from_dockerfile("Dockerfile")


@app.function(image=image)
def fit():
    import sklearn
    return sklearn.__version__
