"""Picture of anny bodies with and without local changes: docs/bodies.png.

Usage: ANNY_CACHE_DIR=... python tools/plot_bodies.py [--n 10] [--seed 3]
The same bodies (same phenotypes) are drawn twice: phenotypes only, then with the default
local body changes, to check by eye that the extra variation stays plausible.
"""

import argparse
from pathlib import Path

import numpy as np

from bodyshape.plotting import bodies_figure
from bodyshape.shape import anny_bodies as ab

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "docs" / "bodies.png"))
    a = ap.parse_args()
    with_local = ab.sample_body_params(a.n, np.random.default_rng(a.seed))
    plain = ab.BodyParams(with_local.phenotypes, np.zeros_like(with_local.local_changes),
                          with_local.local_change_labels, with_local.sex,
                          with_local.morphological_age)
    meshes = [ab.body_meshes(p) for p in (plain, with_local)]
    verts = np.concatenate([m.vertices for m in meshes])
    labels = [f"{'phen. only' if k == 0 else 'local'} {s[0]} {h:.2f} m"
              for k, m in enumerate(meshes) for s, h in zip(with_local.sex, m.stature)]
    bodies_figure(verts, meshes[0].faces, a.out, labels, per_row=a.n,
                  title="Row 1: phenotypes only. Row 2: the same bodies with local changes.")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
