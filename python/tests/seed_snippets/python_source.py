"""### Add Python Source"""

import strata as modal

app = modal.App()

image = modal.Image.debian_slim().add_local_python_source("local_module")


@app.function(image=image)
def f():
    import local_module
    return local_module.do_stuff()
