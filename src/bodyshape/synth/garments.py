"""Clothing, hair and shoes over a synthetic body: what widens a real person's silhouette.

A person in a photo is the body plus its garments; the training target stays the body. An
outfit is four layers drawn independently (``GarmentSpec``):

======  ==================================================  =============================
layer   kinds (default probability)                         geometry
======  ==================================================  =============================
top     tight 0.55, T-shirt 0.30, loose 0.15                offset over torso and sleeves
bottom  leggings 0.50, shorts 0.15, trousers 0.20,          offset over pelvis and legs;
        skirt/dress 0.15                                    the skirt adds a tube that
                                                            bridges the legs
hair    short 0.45, long 0.20, bun 0.20, ponytail 0.15      offset over the scalp; long
                                                            hair, bun and ponytail add a
                                                            slab or an ellipsoid
shoes   none 0.30, shoes 0.70                               offset over the feet
======  ==================================================  =============================

Tight clothing is the most common because users are asked to wear it. Each layer is an
**offset surface over template regions**: every template vertex moves along its rest normal
by the thickest garment that covers it (``THICKNESS_MM`` gives the ranges, drawn per
sample), so the dressed body keeps the template topology, its skinning weights and its
closed, outward winding, and costs nothing extra to pose or rasterize. The regions come
from the rig: a vertex belongs to the joint of its largest skinning weight, and along a limb
its position is measured as a fraction of the bone (``Regions``). The attached pieces (skirt
tube, hair slab, bun, ponytail) are small meshes built in the rest frame of each body and
skinned rigidly to the pelvis or the head, so they follow the pose.

Randomness: ``draw_outfit`` and ``dress`` take the generator; synthesis gives each sample
its own (``default_rng([seed, 2, index])``), so a sample's clothes do not depend on worker
count, attempts or the other layers of the spec.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from bodyshape.body import BodyModel
from bodyshape.body.rig import JOINT_NAMES
from bodyshape.dataset.shard_format import GARMENT_KINDS, GARMENT_LAYERS
from bodyshape.shape.register import vertex_normals

# The vocabulary is part of the shard format (the codes shards store).
LAYERS, KINDS = GARMENT_LAYERS, GARMENT_KINDS
#: Offset ranges (low, high) in millimetres, uniform per sample.
THICKNESS_MM = {
    "tight": (1.0, 5.0), "tshirt": (5.0, 14.0), "loose": (15.0, 35.0),
    "tshirt_sleeve": (10.0, 25.0), "loose_sleeve": (20.0, 40.0), "loose_drape": (10.0, 35.0),
    "leggings": (1.0, 5.0), "shorts": (8.0, 20.0), "trousers": (15.0, 35.0),
    "skirt_band": (3.0, 10.0),
    "scalp": (3.0, 25.0), "scalp_tied": (3.0, 12.0), "shoes": (8.0, 20.0),
}
_J = {name: k for k, name in enumerate(JOINT_NAMES)}


@dataclass(frozen=True)
class GarmentSpec:
    """Probabilities of each layer's kinds (``KINDS`` order; each tuple sums to 1).

    Raises:
        ValueError: (one line) for a wrong length, a negative probability or a sum off 1.
    """

    top: tuple[float, ...] = (0.55, 0.30, 0.15)
    bottom: tuple[float, ...] = (0.50, 0.15, 0.20, 0.15)
    hair: tuple[float, ...] = (0.45, 0.20, 0.20, 0.15)
    shoes: tuple[float, ...] = (0.30, 0.70)

    def __post_init__(self):
        for layer in LAYERS:
            p = getattr(self, layer)
            try:
                p = np.asarray(p, dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"GarmentSpec.{layer} must be numbers, got {p!r}") from None
            if p.shape != (len(KINDS[layer]),) or not np.all(np.isfinite(p)) or np.any(p < 0) \
                    or abs(p.sum() - 1.0) > 1e-6:
                raise ValueError(f"GarmentSpec.{layer} must be {len(KINDS[layer])} non-negative "
                                 f"probabilities of {KINDS[layer]} summing to 1, got "
                                 f"{getattr(self, layer)!r}")

    @classmethod
    def from_dict(cls, d: dict) -> "GarmentSpec":
        unknown = sorted(set(d) - set(LAYERS))
        if unknown:
            raise ValueError(f"unknown GarmentSpec fields: {', '.join(unknown)}")
        return cls(**{k: tuple(v) for k, v in d.items()})


@dataclass(frozen=True)
class Outfit:
    """Kind codes of one outfit: an index into ``KINDS[layer]`` per layer."""

    top: int
    bottom: int
    hair: int
    shoes: int

    def codes(self) -> np.ndarray:
        """(4,) int8 in ``LAYERS`` order (what shards store)."""
        return np.array([self.top, self.bottom, self.hair, self.shoes], dtype=np.int8)

    def names(self) -> dict[str, str]:
        return {layer: KINDS[layer][getattr(self, layer)] for layer in LAYERS}


def draw_outfit(rng: np.random.Generator, spec: GarmentSpec = GarmentSpec()) -> Outfit:
    """One outfit, each layer drawn from its probabilities (four draws from ``rng``)."""
    return Outfit(**{layer: int(rng.choice(len(KINDS[layer]), p=getattr(spec, layer)))
                     for layer in LAYERS})


@dataclass(frozen=True, eq=False)
class Regions:
    """Where each garment sits on the template, per template vertex (V,).

    Attributes:
        part: joint index of the largest skinning weight.
        arm_t: position along the arm: 0 at the shoulder, 1 at the elbow, 2 at the wrist
            (projected on each bone, clamped to the bone); -1 off the arms.
        leg_t: the same along the leg (hip 0, knee 1, ankle 2); -1 off the legs.
        torso_s: height on the trunk, 0 at the hip joints and 1 at the shoulder joints.
        scalp: whether the vertex is hair-covered scalp (upper head and back of the head).
    """

    part: np.ndarray
    arm_t: np.ndarray
    leg_t: np.ndarray
    torso_s: np.ndarray
    scalp: np.ndarray


def _chain_t(v: np.ndarray, part: np.ndarray, joints: np.ndarray, chain: tuple[str, ...]
             ) -> np.ndarray:
    """Bone fraction along a 3-joint chain for the vertices of its joints (else -1)."""
    t = np.full(len(v), -1.0)
    for k, name in enumerate(chain):
        sel = part == _J[name]
        a = joints[_J[name]]
        b = joints[_J[chain[k + 1]]] if k + 1 < len(chain) else 2 * a - joints[_J[chain[k - 1]]]
        d = b - a
        t[sel] = k + np.clip((v[sel] - a) @ d / (d @ d), 0.0, 1.0)
    return t


@functools.lru_cache(maxsize=4)
def regions(body: BodyModel) -> Regions:
    """The garment regions of ``body``'s template (cached per body model)."""
    v = body.template.vertices.astype(np.float64)
    part = np.argmax(body.rig.weights, axis=1)
    joints = body.joints(v)
    arm = np.maximum(_chain_t(v, part, joints, ("shoulder_l", "elbow_l", "wrist_l")),
                     _chain_t(v, part, joints, ("shoulder_r", "elbow_r", "wrist_r")))
    leg = np.maximum(_chain_t(v, part, joints, ("hip_l", "knee_l", "ankle_l")),
                     _chain_t(v, part, joints, ("hip_r", "knee_r", "ankle_r")))
    z_hip, z_sh = joints[_J["hip_l"], 2], joints[_J["shoulder_l"], 2]
    torso_s = (v[:, 2] - z_hip) / (z_sh - z_hip)
    head = part == _J["head"]
    z0, top = joints[_J["head"], 2], v[head, 2].max()
    back = v[:, 1] > joints[_J["head"], 1] + 0.01  # the body faces -Y: +Y is the back
    scalp = head & ((v[:, 2] > z0 + 0.55 * (top - z0)) | (back & (v[:, 2] > z0 + 0.1 * (top - z0))))
    return Regions(part, arm, leg, torso_s, scalp)


@dataclass(frozen=True, eq=False)
class Dressed:
    """A body's garments in its rest frame.

    Attributes:
        offset: (V,) meters, how far each body vertex moves along its rest normal.
        normals: (V, 3) unit rest normals of the body.
        extra_vertices: (E, 3) meters, the attached pieces (skirt, hair slab, bun, ponytail).
        extra_faces: (F, 3) int, closed outward-wound meshes of the attached pieces.
        extra_joint: (E,) int, the joint each attached vertex is skinned to (rigidly).
    """

    offset: np.ndarray
    normals: np.ndarray
    extra_vertices: np.ndarray
    extra_faces: np.ndarray
    extra_joint: np.ndarray

    def dressed_rest(self, rest: np.ndarray) -> np.ndarray:
        """(V, 3) the rest body moved out to its garment surface."""
        return rest + self.normals * self.offset[:, None]


def _mm(rng: np.random.Generator, key: str) -> float:
    lo, hi = THICKNESS_MM[key]
    return float(rng.uniform(lo, hi)) * 1e-3


def ellipsoid(centre, radii, n_lat: int = 8, n_lon: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A UV ellipsoid -> ((n_lon * (n_lat - 1) + 2, 3) vertices, faces wound outward)."""
    th = np.linspace(0, np.pi, n_lat + 1)[1:-1]
    ph = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    s, c = np.sin(th)[:, None], np.cos(th)[:, None]
    ring = np.stack([s * np.cos(ph), s * np.sin(ph), np.broadcast_to(c, (len(th), n_lon))], -1)
    unit = np.concatenate([[[0, 0, 1.0]], ring.reshape(-1, 3), [[0, 0, -1.0]]])
    faces = []
    j = (np.arange(n_lon) + 1) % n_lon
    i = np.arange(n_lon)
    faces += list(np.stack([np.zeros(n_lon, int), 1 + i, 1 + j], 1))
    for r in range(len(th) - 1):
        a, b = 1 + r * n_lon, 1 + (r + 1) * n_lon
        faces += list(np.stack([a + i, b + i, b + j], 1)) + list(np.stack([a + i, b + j, a + j], 1))
    last, base = len(unit) - 1, 1 + (len(th) - 1) * n_lon
    faces += list(np.stack([np.full(n_lon, last), base + j, base + i], 1))
    return np.asarray(centre) + unit * np.asarray(radii), np.array(faces, dtype=np.int64)


def _band(rest: np.ndarray, sel: np.ndarray, z: float, half: float = 0.015):
    """(centre xy, half extents xy) of the selected vertices within +-half of height z."""
    p = rest[sel & (np.abs(rest[:, 2] - z) < half)]
    lo, hi = p[:, :2].min(0), p[:, :2].max(0)
    return 0.5 * (lo + hi), 0.5 * (hi - lo)


def _skirt(rest, reg, joints, rng):
    """A closed tube from just above the hips to a hem between mid-thigh and mid-calf."""
    z_top = joints[_J["hip_l"], 2] + 0.06
    z_hem = joints[_J["knee_l"], 2] + rng.uniform(-0.12, 0.15)
    lower = np.isin(reg.part, [_J["pelvis"], _J["spine"], _J["hip_l"], _J["hip_r"],
                               _J["knee_l"], _J["knee_r"]])
    c_top, r_top = _band(rest, lower, z_top)
    c_hem, r_hem = _band(rest, lower, z_hem, 0.03)
    flare = rng.uniform(1.0, 1.3)
    r_hem = np.maximum(r_hem + 0.015, r_top * flare)
    verts, faces = ellipsoid((0, 0, 0), (1, 1, 1), n_lat=4, n_lon=20)
    # Map the unit ellipsoid's rings onto the two ellipses (top and hem), caps included.
    k = np.clip(0.5 - 0.5 * verts[:, 2], 0, 1)[:, None]  # 0 at the top pole, 1 at the hem
    centre = np.concatenate([(1 - k) * c_top + k * c_hem, z_top + k * (z_hem - z_top)], 1)
    radius = (1 - k) * (r_top + 0.005) + k * r_hem
    side = verts[:, :2] / np.maximum(np.linalg.norm(verts[:, :2], axis=1, keepdims=True), 1e-9)
    side[np.abs(verts[:, 2]) == 1.0] = 0.0
    out = centre.copy()
    out[:, :2] += side * radius
    return out, faces, _J["pelvis"]


def _hair_piece(kind, rest, reg, joints, rng):
    """The slab, bun or ponytail of a hairstyle, in the rest frame of the head."""
    head = reg.part == _J["head"]
    p = rest[head]
    lo, hi = p.min(0), p.max(0)
    cx, half_w = 0.5 * (lo[0] + hi[0]), 0.5 * (hi[0] - lo[0])
    back, top, z0 = hi[1], hi[2], joints[_J["head"], 2]
    if kind == "bun":
        r = rng.uniform(0.03, 0.055)
        up = rng.uniform(0.0, 1.0)  # from the back of the head to its crown
        centre = (cx, back - 0.3 * r - up * 0.05, z0 + (0.35 + 0.55 * up) * (top - z0))
        return (*ellipsoid(centre, (r, r, r * 0.9)), _J["head"])
    if kind == "ponytail":
        length, r = rng.uniform(0.12, 0.35), rng.uniform(0.02, 0.04)
        z_tie = z0 + rng.uniform(0.3, 0.7) * (top - z0)
        return (*ellipsoid((cx, back + 0.6 * r, z_tie - 0.45 * length), (r, r, length / 2)),
                _J["head"])
    length = rng.uniform(0.15, 0.40)  # long hair: a slab behind the head and shoulders
    z_c = z0 + 0.4 * (top - z0) - 0.5 * length
    return (*ellipsoid((cx, back - 0.03, z_c), (half_w + rng.uniform(0.0, 0.03), 0.035,
                                                 0.5 * length + 0.05)), _J["head"])


def dress(body: BodyModel, rest: np.ndarray, outfit: Outfit, rng: np.random.Generator
          ) -> Dressed:
    """The garments of ``outfit`` over one rest body.

    Args:
        body: the body model (its template regions and rig).
        rest: (V, 3) float64 rest (unposed) body, meters.
        outfit: the kinds of each layer.
        rng: the only source of the thicknesses and shapes.
    """
    reg = regions(body)
    joints = body.joints(rest)
    names = outfit.names()
    off = np.zeros(len(rest))

    def cover(sel, d):
        np.maximum(off, np.where(sel, d, 0.0), out=off)

    trunk = np.isin(reg.part, [_J["pelvis"], _J["spine"]])
    top = names["top"]
    cover(trunk & (reg.torso_s > -0.05), _mm(rng, top))
    if top == "tight":
        cover((reg.arm_t >= 0) & (reg.arm_t < rng.uniform(0.05, 0.3)), _mm(rng, "tight"))
    else:
        sleeve = rng.uniform(0.35, 0.8) if top == "tshirt" else rng.uniform(0.4, 1.0)
        cover((reg.arm_t >= 0) & (reg.arm_t < sleeve), _mm(rng, f"{top}_sleeve"))
    if top == "loose":  # hangs from the chest: fills the waist more than the hips
        bump = np.clip(1.0 - np.abs(reg.torso_s - 0.35) / 0.3, 0.0, 1.0)
        cover(trunk & (reg.torso_s > -0.05), off + _mm(rng, "loose_drape") * bump)

    bottom = names["bottom"]
    waist = trunk & (reg.torso_s < 0.3)
    kind = "skirt_band" if bottom == "skirt" else bottom
    d = _mm(rng, kind)
    cover(waist, d)
    end = {"leggings": 1.9, "trousers": 1.95, "shorts": rng.uniform(0.25, 0.8), "skirt": 0.0}
    cover((reg.leg_t >= 0) & (reg.leg_t < end[bottom]), d)
    if names["shoes"] == "shoes":
        cover(reg.leg_t >= 1.9, _mm(rng, "shoes"))
    hair = names["hair"]
    cover(reg.scalp, _mm(rng, "scalp" if hair == "short" else "scalp_tied"))

    pieces = []
    if bottom == "skirt":
        pieces.append(_skirt(rest, reg, joints, rng))
    if hair != "short":
        pieces.append(_hair_piece(hair, rest, reg, joints, rng))
    ev, ef, ej, n = [np.zeros((0, 3))], [np.zeros((0, 3), np.int64)], [np.zeros(0, np.int64)], 0
    for v, f, j in pieces:
        ev.append(v), ef.append(f + n), ej.append(np.full(len(v), j))
        n += len(v)
    return Dressed(off, vertex_normals(rest, body.faces), np.concatenate(ev),
                   np.concatenate(ef), np.concatenate(ej))


def spec_dict(spec: GarmentSpec | None) -> dict | None:
    """JSON-able form of an optional spec."""
    return None if spec is None else dataclasses.asdict(spec)
