"""Body quantities of template-topology meshes, batched in torch: enclosed volume, the body
weight it implies, and where each plane-section girth is taken.

Numpy callers (``measure.body_stats``) wrap these; the synthetic weight that weight-aware
networks train on (``train``) is :func:`body_weight_kg` of the true body plus
self-report noise (:data:`SELF_REPORT_STD_KG`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

BODY_DENSITY_KG_M3 = 1010.0
"""Whole-body density, kg/m^3, lungs included. Hydrostatic weighing gives 1030-1070 kg/m^3
for adults once the residual lung air is removed (lean bodies higher); the mesh also
encloses the functional residual air (about 2.5-3 L of some 70 L), which brings a typical
body to about 1010 kg/m^3."""
SELF_REPORT_STD_KG = 2.0
"""Noise of a weight the user types in, kg (1 std): home scales, clothing, time of day and
the rounding of self-reports differ from the true weight by a few kilograms."""


def mesh_volume(vertices: Tensor, faces: Tensor) -> Tensor:
    """Enclosed volume of closed meshes by the divergence theorem.

    Args:
        vertices: (..., V, 3) meters.
        faces: (F, 3) integer, consistently oriented (either way: the sign is dropped).

    Returns:
        (...,) m^3.
    """
    tri = vertices[..., faces, :]  # (..., F, 3, 3)
    det = (tri[..., 0, :] * torch.linalg.cross(tri[..., 1, :], tri[..., 2, :])).sum(-1)
    return det.sum(-1).abs() / 6.0


def body_weight_kg(vertices: Tensor, faces: Tensor,
                   density_kg_m3: float = BODY_DENSITY_KG_M3) -> Tensor:
    """Body weight, kg, of meshes (..., V, 3) in meters: volume x density -> (...,)."""
    return mesh_volume(vertices, faces) * density_kg_m3


# ---------------------------------------------------------------------------------------------
# Where the plane-section girths are taken. ``measure.py`` slices there (numpy, wrapping
# these), and the training's differentiable girths (``nets.girths``) follow the same planes.

THIGH_DROP = 0.3
"""Thigh level, as a fraction of the way from the crotch down to thigh_front (mid-thigh): on
the template 3.6 cm below the crotch, where the back profile turns from buttock to thigh
(the gluteal fold). A fraction rather than a fixed offset keeps every measurement
proportional to body scale."""
SECTION_NAMES = ("chest", "waist", "hip", "neck", "thigh_l", "thigh_r", "bicep_l", "bicep_r")

Landmarks = dict[str, Tensor]
"""Landmark name -> (..., 3) position, meters (any batch shape, one per body)."""


@dataclass(frozen=True)
class Section:
    """Where a plane-section girth is taken: origin (..., 3) on the plane and its unit
    normal (..., 3), meters; ``keep_point``/``keep_dir`` (..., 3) or None: only the loop's
    part on the ``keep_dir`` side of the plane through ``keep_point`` normal to ``keep_dir``
    counts (two thighs that touch, an arm against the chest)."""

    origin: Tensor
    normal: Tensor
    keep_point: Tensor | None = None
    keep_dir: Tensor | None = None


def _unit(x: Tensor) -> Tensor:
    return x / torch.linalg.norm(x, dim=-1, keepdim=True)


def limb_plane(proximal: Tensor, distal: Tensor, at: float = 0.5) -> tuple[Tensor, Tensor]:
    """The plane perpendicular to a limb axis: (origin, unit normal), each (..., 3);
    ``origin`` lies a fraction ``at`` of the way from ``proximal`` to ``distal``."""
    axis = distal - proximal
    return proximal + at * axis, _unit(axis)


def neck_plane(lm: Landmarks) -> tuple[Tensor, Tensor]:
    """Neck-girth plane through neck_front, neck_back and the neck sides: (origin, normal).
    The four landmarks were placed on one inclined plane (lower at the throat than at the
    nape); its normal is the neck axis that ISO wants the tape perpendicular to."""
    pts = torch.stack([lm["neck_front"], lm["neck_back"], lm["neck_side_l"], lm["neck_side_r"]])
    normal = torch.linalg.cross(lm["neck_side_l"] - lm["neck_side_r"],
                                lm["neck_back"] - lm["neck_front"], dim=-1)
    return pts.mean(0), _unit(normal)


def joint_centres(lm: Landmarks, side: str) -> dict[str, Tensor]:
    """Elbow, wrist, knee and ankle centres of one side ("l"/"r"): midpoints of the bony
    landmark pairs, each (..., 3)."""
    def mid(a: str, b: str) -> Tensor:
        return (lm[f"{a}_{side}"] + lm[f"{b}_{side}"]) / 2

    return {"elbow": mid("elbow_lateral", "elbow_medial"),
            "wrist": mid("radial_styloid", "ulnar_styloid"),
            "knee": mid("knee_lateral", "knee_medial"),
            "ankle": mid("malleolus_lateral", "malleolus_medial")}


def side_direction(lm: Landmarks, side: str) -> Tensor:
    """Unit x vector (..., 3) pointing to ``side``, read from the landmarks so mirrored
    meshes work."""
    sign = torch.sign(lm[f"acromion_{side}"][..., 0] - lm["crotch"][..., 0])
    zero = torch.zeros_like(sign)
    return torch.stack([sign, zero, zero], dim=-1)


def girth_sections(lm: Landmarks) -> dict[str, Section]:
    """The planes of the plane-section girths (``SECTION_NAMES``) of bodies given by their
    landmarks (docs/MEASUREMENTS.md gives each definition)."""
    up = torch.zeros_like(lm["crotch"])
    up[..., 2] = 1.0
    # Torso: probe at the torso's mid-depth on the midline, so the arms cut by the same
    # plane are never picked.
    centre = (lm["waist_front"] + lm["waist_back"]) / 2
    bust_z = (lm["bust_point_l"][..., 2] + lm["bust_point_r"][..., 2]) / 2
    hip_z = (lm["buttock_l"][..., 2] + lm["buttock_r"][..., 2]) / 2
    hip_y = (lm["buttock_l"][..., 1] + lm["asis_l"][..., 1]) / 2
    out = {"chest": Section(torch.stack([centre[..., 0], centre[..., 1], bust_z], -1), up),
           "waist": Section(centre, up),
           "hip": Section(torch.stack([centre[..., 0], hip_y, hip_z], -1), up),
           "neck": Section(*neck_plane(lm))}
    for side in ("l", "r"):
        c = joint_centres(lm, side)
        out_dir = side_direction(lm, side)
        # Arm girths: the loop around the arm axis; should the arm touch the chest, only the
        # part lateral to the armpit counts.
        axilla = (lm[f"axilla_front_{side}"] + lm[f"axilla_back_{side}"]) / 2
        out[f"bicep_{side}"] = Section(*limb_plane(lm[f"acromion_{side}"], c["elbow"], 0.5),
                                       axilla, out_dir)
        # Thigh: horizontal, probe at thigh_front's x and the knee's depth (the thigh's
        # middle); thighs that touch are split at the crotch's sagittal plane.
        front = lm[f"thigh_front_{side}"]
        z = lm["crotch"][..., 2] + THIGH_DROP * (front[..., 2] - lm["crotch"][..., 2])
        out[f"thigh_{side}"] = Section(torch.stack([front[..., 0], c["knee"][..., 1], z], -1),
                                       up, lm["crotch"], out_dir)
    return out
