"""An app whose image lacks a module that its module imports under image.imports(): here the
ImportError is skipped; in the container, where the function's module is imported again, it
is raised."""

import strata as modal

image = modal.Image.debian_slim("3.13")
app = modal.App(image=image)

with image.imports():
    import strata_test_module_that_no_image_has  # noqa: F401


@app.function()
def uses_it():
    return strata_test_module_that_no_image_has.VALUE
