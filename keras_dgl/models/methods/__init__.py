"""The training methods of `keras_dgl.DGLModel`, one strategy class per file.

`REGISTRY` maps each `method=` name of `keras_dgl.registry.METHODS` to its
class; each class documents what it changes, its options (`method_options=`)
with their published defaults, where it departs from the reference code, and
its paper.
"""

from keras_dgl import registry
from keras_dgl.models.methods.agm import AGM
from keras_dgl.models.methods.dgl import DGL
from keras_dgl.models.methods.gblend import GBlend
from keras_dgl.models.methods.inforeg import InfoReg
from keras_dgl.models.methods.joint import Joint
from keras_dgl.models.methods.joint_aux import JointAux
from keras_dgl.models.methods.method import Method
from keras_dgl.models.methods.mla import MLA
from keras_dgl.models.methods.mmpareto import MMPareto
from keras_dgl.models.methods.ogm import OGM
from keras_dgl.models.methods.ogm_ge import OGMGE
from keras_dgl.models.methods.pmr import PMR
from keras_dgl.models.methods.reconboost import ReconBoost

# Built from keras_dgl.registry, where each method's name, summary and paper
# are written once.
REGISTRY = {
    name: globals()[entry.strategy]
    for name, entry in registry.METHODS.items()
    if entry.strategy is not None
}
METHODS = tuple(REGISTRY)


def get(name):
    """The `Method` class registered under `name`.

    Args:
        name: str, a `method=` value of `keras_dgl.DGLModel`.

    Returns:
        A subclass of `keras_dgl.models.methods.Method`.

    Example:

    ```python
    cls = keras_dgl.models.methods.get("dgl")
    print(cls.defaults)
    ```
    """
    if name not in REGISTRY:
        raise ValueError(f"Unknown `method` {name!r}. Expected one of {METHODS}.")
    return REGISTRY[name]


__all__ = ["METHODS", "REGISTRY", "Method", "get"]
