"""Networks from calibrated silhouettes (+ stature and sex) to whitened PCA shape
coefficients, and their losses.

Nothing in this package reads or writes files: weights and PCA arrays come from the caller.
"""

from bodyshape.nets.losses import (
    MESH_LOSS_SCALE_M,
    ShapeLoss,
    WeightSchedule,
    iou_loss,
    mesh_loss,
    pca_loss,
    shape_loss,
    soft_iou,
    vertex_error_mm,
)
from bodyshape.nets.decoder import MeshDecoder
from bodyshape.nets.encoder import Encoder, EncoderConfig
from bodyshape.nets.models import (
    AUX_DIM,
    FusionModel,
    FusionOutput,
    HeadConfig,
    InputConfig,
    TwoChannelModel,
    ViewModel,
    ViewOutput,
    aux_features,
    init_last_layer_from_pca,
)

__all__ = [
    "AUX_DIM",
    "MESH_LOSS_SCALE_M",
    "Encoder",
    "EncoderConfig",
    "FusionModel",
    "FusionOutput",
    "HeadConfig",
    "InputConfig",
    "MeshDecoder",
    "ShapeLoss",
    "TwoChannelModel",
    "ViewModel",
    "ViewOutput",
    "WeightSchedule",
    "aux_features",
    "init_last_layer_from_pca",
    "iou_loss",
    "mesh_loss",
    "pca_loss",
    "shape_loss",
    "soft_iou",
    "vertex_error_mm",
]
