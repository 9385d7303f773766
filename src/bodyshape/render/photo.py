"""Plausible "phone photos" of body meshes, for examples and segmentation tests.

A mesh in the template topology is drawn with a depth-buffered rasterizer and Lambert shading
(one directional light plus ambient) in tight clothing (dark shorts, a coloured top, dark
hair), standing in front of a light plain wall on a slightly darker floor, with a soft contact
shadow and light sensor noise. Nothing here is physically accurate; the point is an image that
a person segmenter accepts, with an exactly known silhouette
(``bodyshape.render.raster.silhouette`` with the same camera).

Conventions as in :mod:`bodyshape.render`: meters, Z up, the subject facing -Y with their
left at +X; OpenCV cameras; pixel (row i, column j) has its centre at ``(j + 0.5, i + 0.5)``.
Colours are RGB in [0, 1] (linear) until the final sRGB-like encoding to uint8.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numba
import numpy as np

from bodyshape.body import BodyModel
from bodyshape.render.camera import Camera, intrinsics, look_at
from bodyshape.shape.register import vertex_normals

logger = logging.getLogger(__name__)

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class PhotoStyle:
    """Colours (linear RGB in [0, 1]), lighting and scene layout of a rendered photo.

    Attributes:
        skin, hair, top, shorts: albedos of the body regions (see ``body_regions``).
        wall, floor: albedos of the background planes.
        light_dir: (3,) world direction *towards* the light (normalised internally).
        ambient: ambient light level; the directional light adds ``1 - ambient`` at most.
        wall_gap: distance from the body's back (max y) to the wall, meters.
        shadow: darkening (0..1) at the centre of the soft contact shadow under the feet.
        noise_sigma: std of the Gaussian sensor noise, in 8-bit grey levels.
        supersample: the body is rasterized at this many times the photo resolution per axis
            and area-averaged down (anti-aliased edges).
    """

    skin: RGB = (0.62, 0.36, 0.25)
    hair: RGB = (0.035, 0.025, 0.02)
    top: RGB = (0.08, 0.16, 0.32)
    shorts: RGB = (0.03, 0.03, 0.035)
    wall: RGB = (0.78, 0.76, 0.72)
    floor: RGB = (0.50, 0.46, 0.41)
    light_dir: tuple[float, float, float] = (-0.35, -1.0, 0.7)
    ambient: float = 0.35
    wall_gap: float = 0.9
    shadow: float = 0.45
    noise_sigma: float = 2.0
    supersample: int = 2


@dataclass(frozen=True, eq=False)
class Photo:
    """A rendered photo.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        coverage: (H, W) float32 in [0, 1], fraction of each pixel covered by the body
            (threshold at 0.5 for a mask; the exact silhouette is ``raster.silhouette``).
        camera: the camera that took it.
    """

    image: np.ndarray
    coverage: np.ndarray
    camera: Camera


# --------------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------------


def photo_camera(vertices: np.ndarray, width: int = 1536, height: int = 2048,
                 camera_height: float = 1.3, distance: float = 2.8, fill: float = 0.8
                 ) -> Camera:
    """A level-ish phone camera in front of a standing body (on the -Y side, looking +Y).

    Args:
        vertices: (V, 3) or (B, V, 3) world meters; the floor is their min z.
        width, height: photo size, pixels.
        camera_height: camera height above the floor, meters.
        distance: horizontal distance from the body's front (min y) to the camera, meters.
        fill: fraction of the photo height spanned by the projected bounding box; the
            vertical field of view is chosen to hit it.

    Returns:
        The camera, aimed at the centre of the bounding box.
    """
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    lo, hi = v.min(axis=0), v.max(axis=0)
    centre = 0.5 * (lo + hi)
    position = np.array([centre[0], lo[1] - distance, lo[2] + camera_height])
    R, t = look_at(position, centre)
    probe = Camera(intrinsics(np.deg2rad(60.0), width, height), R, t, width, height)
    pix, _ = probe.project(v)
    # Projections about the centred principal point scale linearly with the focal length.
    extent = 2.0 * np.max(np.abs(pix[:, 1] - 0.5 * height))
    f = probe.K[1, 1] * fill * height / extent
    vfov = 2.0 * np.arctan(0.5 * height / f)
    return Camera(intrinsics(vfov, width, height), R, t, width, height)


def body_regions(body: BodyModel, vertices: np.ndarray) -> np.ndarray:
    """Soft clothing fields of a template-topology body standing upright, any yaw.

    Args:
        body: the body model (rig weights and joint regressor).
        vertices: (V, 3) meters.

    Returns:
        (V, 3) float64 fields for (hair, top, shorts): a region is where its field is positive.
        Interpolating the fields across triangles and thresholding per pixel gives smooth
        region borders (per-vertex labels would give jagged ones). Regions come from the rig's
        skinning weights and joints: shorts on the pelvis and the upper 40 % of the thighs, a
        tank top on the torso (armholes and neckline cut geometrically), hair on the skull
        above the eyes and on the back of the head; the rest is skin. Earlier fields take
        precedence.
    """
    v = np.asarray(vertices, dtype=np.float64)
    rig = body.rig
    if v.shape != (rig.weights.shape[0], 3):
        raise ValueError(f"need template-topology vertices ({rig.weights.shape[0]}, 3), "
                         f"got {v.shape}")
    joints = body.joints(v)
    wt = rig.weights
    j = {name: i for i, name in enumerate(rig.joint_names)}
    z = v[:, 2]

    hip_z = 0.5 * (joints[j["hip_l"], 2] + joints[j["hip_r"], 2])
    knee_z = 0.5 * (joints[j["knee_l"], 2] + joints[j["knee_r"], 2])
    cut_z = hip_z - 0.4 * (hip_z - knee_z)
    lower = wt[:, j["pelvis"]] + wt[:, j["hip_l"]] + wt[:, j["hip_r"]]
    shorts = np.minimum(lower - 0.5, (z - cut_z) / 0.05)
    # Tank top: the torso by skinning weights below the armpits (clean borders there); above
    # them, where the weights of the clavicle region are ragged, a geometric cut: inside 75 %
    # of the half shoulder width (armholes) and below the neck joint (neckline).
    sh_l, sh_r = joints[j["shoulder_l"]], joints[j["shoulder_r"]]
    axis = (sh_l - sh_r)[:2] / max(float(np.linalg.norm((sh_l - sh_r)[:2])), 1e-12)
    lateral = np.abs((v[:, :2] - 0.5 * (sh_l + sh_r)[:2]) @ axis)
    half = 0.5 * float(np.linalg.norm((sh_l - sh_r)[:2]))
    armpit_z = 0.5 * (sh_l[2] + sh_r[2]) - 0.07
    torso = wt[:, j["spine"]] - 0.5
    upper = np.minimum.reduce([(0.75 * half - lateral) / 0.03,
                               (joints[j["neck"], 2] - z) / 0.03, (z - armpit_z + 0.02) / 0.03])
    top = np.maximum(np.minimum(torso, (armpit_z - z) / 0.05), upper)

    w_head = wt[:, j["head"]]
    skull_base = joints[j["head"]]
    top_z = z[w_head > 0.5].max()
    # Facing direction in the horizontal plane: the right->left shoulder axis turned by
    # -90 degrees (robust for standing poses, whatever the body's yaw).
    sh = joints[j["shoulder_l"], :2] - joints[j["shoulder_r"], :2]
    fwd = np.array([sh[1], -sh[0]]) / max(float(np.linalg.norm(sh)), 1e-12)
    ahead = (v[:, :2] - skull_base[:2]) @ fwd / 0.1  # in 10 cm units in front of the skull base
    rel = (z - skull_base[2]) / max(top_z - skull_base[2], 1e-6)  # 0 at skull base, 1 at top
    scalp = np.maximum.reduce([rel - 0.62, np.minimum(-ahead, rel - 0.15),
                               np.minimum(0.5 - ahead, rel - 0.5)])
    hair = np.minimum(w_head - 0.5, scalp)
    return np.stack([hair, top, shorts], axis=1)


def region_albedo(fields: np.ndarray, style: PhotoStyle = PhotoStyle()) -> np.ndarray:
    """(..., 3) albedo from (..., 3) ``body_regions`` fields (hair, top, shorts, else skin)."""
    out = np.broadcast_to(np.asarray(style.skin, dtype=np.float64), fields.shape).copy()
    for k, colour in ((2, style.shorts), (1, style.top), (0, style.hair)):
        out[fields[..., k] > 0.0] = colour  # painted last wins: hair > top > shorts
    return out


# --------------------------------------------------------------------------------------------
# Depth-buffered rasterizer
# --------------------------------------------------------------------------------------------


@numba.njit(cache=True)
def _raster_depth(pix, inv_depth, faces, width, height, face_id, bary, zbuf):
    for f in range(faces.shape[0]):
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        x0, y0 = pix[i0, 0], pix[i0, 1]
        x1, y1 = pix[i1, 0], pix[i1, 1]
        x2, y2 = pix[i2, 0], pix[i2, 1]
        area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
        if not np.isfinite(area) or area == 0.0:
            continue
        inv_area = 1.0 / area
        jlo = max(np.ceil(min(x0, min(x1, x2)) - 0.5), 0.0)
        jhi = min(np.floor(max(x0, max(x1, x2)) - 0.5), width - 1.0)
        ilo = max(np.ceil(min(y0, min(y1, y2)) - 0.5), 0.0)
        ihi = min(np.floor(max(y0, max(y1, y2)) - 0.5), height - 1.0)
        if jlo > jhi or ilo > ihi:
            continue
        w0, w1, w2 = inv_depth[i0], inv_depth[i1], inv_depth[i2]
        for i in range(int(ilo), int(ihi) + 1):
            py = i + 0.5
            for jj in range(int(jlo), int(jhi) + 1):
                px = jj + 0.5
                l0 = ((x1 - px) * (y2 - py) - (y1 - py) * (x2 - px)) * inv_area
                l1 = ((x2 - px) * (y0 - py) - (y2 - py) * (x0 - px)) * inv_area
                l2 = 1.0 - l0 - l1
                if l0 < 0.0 or l1 < 0.0 or l2 < 0.0:
                    continue
                w = l0 * w0 + l1 * w1 + l2 * w2  # 1/depth is affine in screen space
                if w > zbuf[i, jj]:
                    zbuf[i, jj] = w
                    face_id[i, jj] = f
                    bary[i, jj, 0] = l0 * w0 / w  # perspective-correct barycentrics
                    bary[i, jj, 1] = l1 * w1 / w
                    bary[i, jj, 2] = l2 * w2 / w


def rasterize_depth(vertices: np.ndarray, faces: np.ndarray, camera: Camera
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Visible triangle and barycentric coordinates per pixel centre (z-buffer).

    Args:
        vertices: (V, 3) world meters, all in front of the camera.
        faces: (F, 3) vertex indices.
        camera: the camera (its image size is the raster size).

    Returns:
        face_id: (H, W) int32, index of the nearest triangle covering the pixel centre, -1 if
            none; barycentrics: (H, W, 3) float32 perspective-correct weights of its corners.
    """
    pix, depth = camera.project(vertices)
    if np.any(~(depth > 0.0)):
        raise ValueError("every vertex must be in front of the camera")
    h, w = camera.height, camera.width
    face_id = np.full((h, w), -1, dtype=np.int32)
    bary = np.zeros((h, w, 3), dtype=np.float32)
    zbuf = np.zeros((h, w), dtype=np.float64)
    _raster_depth(np.ascontiguousarray(pix, dtype=np.float64), 1.0 / depth,
                  np.ascontiguousarray(faces, dtype=np.int64), w, h, face_id, bary, zbuf)
    return face_id, bary


# --------------------------------------------------------------------------------------------
# Photo
# --------------------------------------------------------------------------------------------


def _background(camera: Camera, floor_z: float, wall_y: float, feet: list[np.ndarray],
                style: PhotoStyle) -> np.ndarray:
    """(H, W, 3) linear RGB of the wall (plane y = wall_y) and floor (z = floor_z) seen by the
    camera, with a soft shadow around each body's (N, 2) xy ``feet`` points."""
    h, w = camera.height, camera.width
    jj, ii = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    rays_cam = np.stack([(jj - camera.K[0, 2]) / camera.K[0, 0],
                         (ii - camera.K[1, 2]) / camera.K[1, 1], np.ones_like(jj)], axis=-1)
    rays = rays_cam @ camera.R  # camera -> world directions (R^T applied to row vectors)
    c = camera.center
    with np.errstate(divide="ignore", invalid="ignore"):
        t_wall = (wall_y - c[1]) / rays[..., 1]
        t_floor = (floor_z - c[2]) / rays[..., 2]
    t_floor = np.where(t_floor > 0, t_floor, np.inf)
    on_floor = t_floor < t_wall
    out = np.empty((h, w, 3))
    # Wall: brighter towards the top (light from above); floor: darker with distance.
    wall_z = c[2] + t_wall * rays[..., 2] - floor_z
    wall_shade = 0.85 + 0.1 * np.clip(wall_z / 2.5, 0.0, 1.0)
    out[:] = wall_shade[..., None] * np.asarray(style.wall)
    hit = c + t_floor[..., None] * rays
    hx, hy = hit[..., 0][on_floor], hit[..., 1][on_floor]
    shade = 0.9 - 0.15 * np.clip((hy - np.mean([f[:, 1].mean() for f in feet])) / 2.0,
                                 -1.0, 1.0)
    for foot in feet:
        centre = foot.mean(axis=0)
        rx = max(np.ptp(foot[:, 0]) * 0.6, 0.12)
        ry = max(np.ptp(foot[:, 1]) * 0.8, 0.15)
        d2 = ((hx - centre[0]) / rx) ** 2 + ((hy - centre[1]) / ry) ** 2
        shade = shade * (1.0 - style.shadow * np.exp(-d2))
    out[on_floor] = shade[:, None] * np.asarray(style.floor)
    return out


def _encode(linear: np.ndarray) -> np.ndarray:
    """Linear RGB in [0, 1] -> display values in [0, 255] (gamma 2.2), float."""
    return 255.0 * np.clip(linear, 0.0, 1.0) ** (1.0 / 2.2)


def render_photo(body: BodyModel, vertices: np.ndarray, camera: Camera,
                 rng: np.random.Generator, style: PhotoStyle = PhotoStyle()) -> Photo:
    """Render one or more template-topology bodies as a photo.

    Args:
        body: the body model (template faces, rig for the clothing regions).
        vertices: (V, 3) or (B, V, 3) world meters; several bodies share one floor (the
            lowest vertex) and wall (``style.wall_gap`` behind the rearmost vertex).
        camera: the camera; every vertex must be in front of it.
        rng: source of the sensor noise (the only randomness).
        style: colours and lighting.

    Returns:
        The photo (uint8 RGB) and the body coverage per pixel.
    """
    bodies = np.asarray(vertices, dtype=np.float64)
    if bodies.ndim == 2:
        bodies = bodies[None]
    faces = np.asarray(body.faces, dtype=np.int64)
    n_v = bodies.shape[1]
    all_v = bodies.reshape(-1, 3)
    all_f = np.concatenate([faces + b * n_v for b in range(len(bodies))])
    fields = np.concatenate([body_regions(body, b) for b in bodies])
    normals = np.concatenate([vertex_normals(np.asarray(b, np.float64), faces)
                              for b in bodies])

    s = max(int(style.supersample), 1)
    fine = camera.scaled(s)
    face_id, bary = rasterize_depth(all_v, all_f, fine)
    hit = face_id >= 0
    corners = all_f[face_id[hit]]  # (N, 3)
    b = bary[hit].astype(np.float64)[..., None]
    n = np.sum(normals[corners] * b, axis=1)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    col = region_albedo(np.sum(fields[corners] * b, axis=1), style)
    light = np.asarray(style.light_dir, dtype=np.float64)
    light /= np.linalg.norm(light)
    lambert = np.clip(n @ light, 0.0, 1.0)
    # Hemispherical ambient: surfaces facing the floor get less of it.
    amb = style.ambient * (0.75 + 0.25 * n[:, 2])
    shaded = col * (amb + (1.0 - style.ambient) * lambert)[:, None]

    body = np.zeros((fine.height, fine.width, 3))
    body[hit] = shaded
    cov_fine = hit.astype(np.float64)
    size = (camera.width, camera.height)
    body = cv2.resize(body, size, interpolation=cv2.INTER_AREA) if s > 1 else body
    coverage = cv2.resize(cov_fine, size, interpolation=cv2.INTER_AREA) if s > 1 else cov_fine

    floor_z = all_v[:, 2].min()
    feet = [b[b[:, 2] < floor_z + 0.04, :2] for b in bodies]
    feet = [f for f in feet if len(f)] or [all_v[all_v[:, 2] < floor_z + 0.04, :2]]
    bg = _background(camera, floor_z, all_v[:, 1].max() + style.wall_gap, feet, style)
    linear = body + (1.0 - coverage[..., None]) * bg  # body is premultiplied by coverage
    img = _encode(linear) + rng.normal(0.0, style.noise_sigma, size=linear.shape)
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return Photo(image=image, coverage=coverage.astype(np.float32), camera=camera)
