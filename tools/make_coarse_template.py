"""Regenerate src/bodyshape/shape/data/coarse.npz: a decimated template and its vertex map.

Usage: python tools/make_coarse_template.py [--faces 2400] [--agg 3] [--max-offset-mm 6]
(under a second on one core).

Tool requirement (NOT a runtime dependency of bodyshape): ``fast-simplification``
(``pip install fast-simplification``), the quadric-error decimator that trimesh's
``simplify_quadric_decimation`` wraps. Only this script imports it; the package reads the
written npz with numpy alone (``bodyshape.shape.coarse``).

Steps:
1. Decimate the template (13,348 vertices, 26,692 faces) to ``--faces`` triangles with
   aggressiveness ``--agg``. The library default (7) leaves a doubled face (a two-sided flap,
   non-manifold edge) at most targets on this mesh; 3 gives a closed genus-0 surface at every
   target from 2,000 to 3,200 faces (checked when this was written).
2. For every decimated vertex, find the closest point on the template surface and store it as
   barycentric weights of that template triangle's three vertices: a fixed sparse map M
   (Vc x V) such that ``M @ vertices`` follows any mesh in the template topology. The
   decimator places vertices at quadric optima, slightly off the surface; the projection
   moves them by at most ``--max-offset-mm`` (checked), so the coarse surface of the
   template is the decimated one up to that.
3. Check the mapped coarse template: watertight, consistently wound, positive volume, no face
   flipped by the projection; then write ``faces`` (Fc, 3) int32, ``map_index`` (Vc, 3)
   int32, ``map_weight`` (Vc, 3) float32 and ``template_hash``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import trimesh

from bodyshape.shape.template import load_template

logger = logging.getLogger("make_coarse_template")
OUT = Path(__file__).resolve().parents[1] / "src/bodyshape/shape/data/coarse.npz"


def decimate(vertices: np.ndarray, faces: np.ndarray, n_faces: int, agg: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation: (V, 3) m, (F, 3) -> (Vc, 3) float64 m, (Fc, 3) int64."""
    import fast_simplification  # tool-only dependency, see the module docstring

    v, f = fast_simplification.simplify(vertices.astype(np.float32), faces.astype(np.int32),
                                        target_count=int(n_faces), agg=int(agg))
    return np.asarray(v, dtype=np.float64), np.asarray(f, dtype=np.int64)


def surface_map(tpl_vertices: np.ndarray, tpl_faces: np.ndarray, points: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest template-surface point of each (N, 3) point, as barycentric coordinates.

    Returns:
        index: (N, 3) int64 template vertex indices (the closest triangle's corners).
        weight: (N, 3) float64 barycentric weights, >= 0, summing to 1.
        dist: (N,) distance from each point to its closest surface point, meters.
    """
    mesh = trimesh.Trimesh(tpl_vertices, tpl_faces, process=False)
    closest, dist, tri = trimesh.proximity.closest_point(mesh, points)
    index = tpl_faces[tri]
    weight = trimesh.triangles.points_to_barycentric(tpl_vertices[index], closest)
    # The closest point lies in the closed triangle; clip round-off and renormalise so the
    # weights are a convex combination exactly (no extrapolation on deformed bodies).
    weight = np.clip(weight, 0.0, None)
    weight /= weight.sum(axis=1, keepdims=True)
    return index, weight, dist


def check_mesh(vertices: np.ndarray, faces: np.ndarray, reference: np.ndarray) -> None:
    """Raise if the mapped coarse mesh is not a closed, outward, unflipped surface.

    ``reference`` (Vc, 3) are the decimated vertices: every face normal of the mapped mesh
    must point the same way (positive dot) as the decimator's.
    """
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    if not (mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0):
        raise RuntimeError(f"coarse mesh broken: watertight {mesh.is_watertight}, winding "
                           f"{mesh.is_winding_consistent}, volume {mesh.volume:.4f}")
    ref = trimesh.Trimesh(reference, faces, process=False)
    dots = np.einsum("fd,fd->f", mesh.face_normals, ref.face_normals)
    if np.any(dots <= 0):
        raise RuntimeError(f"{int(np.sum(dots <= 0))} faces flipped by the surface projection")
    logger.info("coarse mesh: %d vertices, %d faces, genus %d, volume %.4f m^3, min normal "
                "agreement %.3f", len(vertices), len(faces), (2 - mesh.euler_number) // 2,
                mesh.volume, dots.min())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, default=2400, help="target triangle count")
    ap.add_argument("--agg", type=int, default=3, help="decimation aggressiveness")
    ap.add_argument("--max-offset-mm", type=float, default=6.0,
                    help="largest allowed move of a decimated vertex onto the template")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    tpl = load_template()
    v_dec, faces = decimate(tpl.vertices, tpl.faces, args.faces, args.agg)
    # Drop vertices no face uses (the decimator keeps none, but the map must not carry any).
    used = np.unique(faces)
    if len(used) != len(v_dec):
        remap = np.full(len(v_dec), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        v_dec, faces = v_dec[used], remap[faces]
    index, weight, dist = surface_map(tpl.vertices, tpl.faces, v_dec)
    logger.info("decimated vertex -> template surface: mean %.2f mm, max %.2f mm",
                1e3 * dist.mean(), 1e3 * dist.max())
    if dist.max() * 1e3 > args.max_offset_mm:
        raise RuntimeError(f"a decimated vertex is {1e3 * dist.max():.2f} mm off the template")
    mapped = np.einsum("ck,ckd->cd", weight, tpl.vertices[index])
    check_mesh(mapped, faces, v_dec)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, faces=faces.astype(np.int32),
                        map_index=index.astype(np.int32), map_weight=weight.astype(np.float32),
                        template_hash=np.array(tpl.hash))
    logger.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
