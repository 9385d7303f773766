"""Self-describing network checkpoints: the hand-over file from training to prediction.

A checkpoint (``torch.save`` of a plain dict, loaded with ``weights_only=True``) holds:

- ``format`` = "bodyshape.checkpoint", ``version``;
- ``kind``: "view" (front or side), "two-channel" or "fusion"; ``view``: "front"/"side"
  for view models;
- ``n_components``, ``encoder`` and ``head`` (and ``fusion_head``) configs as dicts: enough
  to rebuild the module without any other file;
- ``shape_model_hash``: the PCA model whose whitened coefficients the network predicts;
  prediction refuses another model;
- ``calibration``: the ``CalibrationSpec`` of the training data (canvas size, body fraction,
  side-view mirroring), so prediction calibrates photos exactly as the training data was;
- ``z_mean``: (K,) mean whitened coefficient of the training data (the PCA initialization);
- ``state_dict``: the weights; ``train``: the training config, epoch, optimizer state and
  history (optional for prediction, needed to resume).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bodyshape.fileio import atomic_path
from bodyshape.nets import (EncoderConfig, FusionModel, HeadConfig, InputConfig,
                           TwoChannelModel, ViewModel)

FORMAT = "bodyshape.checkpoint"
VERSION = 1
KINDS = ("view", "two-channel", "fusion")


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not a bodyshape checkpoint."""


def _config(kind, d: dict):
    return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@dataclass(frozen=True)
class ModelSpec:
    """What is needed to rebuild a network (no weights).

    Attributes:
        kind: one of ``KINDS``.
        n_components: K, the number of predicted (whitened) coefficients.
        encoder: the encoder config (of each branch for fusion).
        head: the view/two-channel head config (the branches' heads for fusion).
        fusion_head: the fusion MLP config (fusion only).
        view: "front" or "side" for view models, None otherwise.
        inputs: part channels and weight input (``InputConfig``); checkpoints written
            before them read as silhouette-only.
        pose_dim: pose angles predicted per view (0: no pose head).
    """

    kind: str
    n_components: int
    encoder: EncoderConfig = EncoderConfig()
    head: HeadConfig = HeadConfig()
    fusion_head: HeadConfig = HeadConfig((256,))
    view: str | None = None
    inputs: InputConfig = InputConfig()
    pose_dim: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if (self.kind == "view") != (self.view in ("front", "side")):
            raise ValueError("view models need view='front' or 'side'; others view=None")

    def build(self) -> nn.Module:
        """A freshly initialized module of this spec."""
        if self.kind == "view":
            return ViewModel(self.n_components, self.encoder, self.head, self.inputs,
                             self.pose_dim)
        if self.kind == "two-channel":
            return TwoChannelModel(self.n_components, self.encoder, self.head, self.inputs,
                                   self.pose_dim)
        return FusionModel.from_configs(self.n_components, self.encoder, self.head,
                                        self.fusion_head, self.inputs, self.pose_dim)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        d = dict(d)
        return cls(kind=d["kind"], n_components=int(d["n_components"]),
                   encoder=_config(EncoderConfig, d["encoder"]),
                   head=_config(HeadConfig, d["head"]),
                   fusion_head=_config(HeadConfig, d["fusion_head"]), view=d.get("view"),
                   inputs=_config(InputConfig, d.get("inputs", {})),
                   pose_dim=int(d.get("pose_dim", 0)))


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        spec: how to rebuild the network.
        model: the network with its weights, in eval mode.
        shape_model_hash: hash of the PCA shape model it predicts for.
        calibration: ``CalibrationSpec.__dict__`` of its training data.
        z_mean: (K,) float32 mean whitened coefficients of the training data.
        train: training state (config, epoch, history, optimizer) or {}.
        path: the file.
    """

    spec: ModelSpec
    model: nn.Module
    shape_model_hash: str
    calibration: dict
    z_mean: torch.Tensor
    train: dict
    path: Path | None = None


def save_checkpoint(path: str | os.PathLike, spec: ModelSpec, model: nn.Module,
                    shape_model_hash: str, calibration: dict, z_mean: torch.Tensor,
                    train: dict | None = None) -> None:
    """Write a checkpoint atomically (a killed save never leaves a broken file)."""
    payload: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "spec": spec.to_dict(),
        "shape_model_hash": shape_model_hash, "calibration": dict(calibration),
        "z_mean": z_mean.detach().float().cpu(), "state_dict": model.state_dict(),
        "train": train or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint and rebuild its network (eval mode, CPU).

    Raises:
        CheckpointError: naming the file, if it is missing, corrupt or not a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors: name the file and keep the cause
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: "
                              f"{exc})") from exc
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a bodyshape checkpoint")
    if d.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {d.get('version')}, this "
                              f"bodyshape reads version {VERSION}")
    spec = ModelSpec.from_dict(d["spec"])
    model = spec.build()
    try:
        model.load_state_dict(d["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match the stored spec ({exc})") from exc
    model.eval()
    return Checkpoint(spec=spec, model=model, shape_model_hash=str(d["shape_model_hash"]),
                      calibration=dict(d["calibration"]), z_mean=d["z_mean"],
                      train=d.get("train") or {}, path=path)


def export_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a checkpoint without its optimizer state (a third of the size): the release
    file that prediction loads. Config, history and everything else are kept."""
    d = torch.load(Path(src), map_location="cpu", weights_only=True)
    load_checkpoint(src)  # validates
    train = dict(d.get("train") or {})
    train.pop("optimizer", None)
    d["train"] = train
    dst = Path(dst)
    with atomic_path(dst) as tmp:
        torch.save(d, tmp)
    return dst
