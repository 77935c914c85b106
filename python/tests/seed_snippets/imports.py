"""## Handling Different Local/Remote Packages"""

import strata as modal

from . import INDEX

app = modal.App()

image = modal.Image.debian_slim().pip_install("pandas==2.2.0", index_url=INDEX)  # stand-in for PyPI


@app.function(image=image)
def my_function():
    import pandas as pd  # Only imported remotely
    df = pd.DataFrame()
    return type(df).__module__


pandas_image = modal.Image.debian_slim().pip_install("pandas", index_url=INDEX)  # stand-in for PyPI

with pandas_image.imports():
    import pandas as pd


@app.function(image=pandas_image)
def my_other_function():
    df = pd.DataFrame()
    return pd.__version__, type(df).__name__
