"""### From Public Registry"""

import strata as modal

from . import REGISTRY

app = modal.App()

sklearn_image = modal.Image.from_registry(f"{REGISTRY}/huanjason/scikit-learn")  # stand-in for Docker Hub


@app.function(image=sklearn_image)
def fit_knn():
    from sklearn.neighbors import KNeighborsClassifier
    model = KNeighborsClassifier(n_neighbors=1).fit([[0, 0], [10, 10]], ["low", "high"])
    return model.predict([[1, 2], [9, 8]])
