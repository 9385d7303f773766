"""Regenerate src/bodyshape/shape/data/anny_landmarks.json (landmark transfer to anny topologies).

Usage: ANNY_CACHE_DIR=... python tools/make_anny_landmarks.py   (builds anny models: minutes)
"""

from pathlib import Path

from bodyshape.fileio import write_json
from bodyshape.shape import anny_bodies as ab
from bodyshape.shape.template import load_template

OUT = Path(__file__).resolve().parents[1] / "src/bodyshape/shape/data/anny_landmarks.json"


def main() -> None:
    template = load_template()
    ids = tuple(int(i) for i in template.landmark_indices)
    table = {"template_hash": template.hash, "landmarks": list(template.landmark_names),
             "topologies": {}}
    for topo in ab.TOPOLOGIES[1:]:
        pts = ab.template_points_on(topo, ids)
        n_faces = len(ab.anny_model(topo).faces)
        table["topologies"][topo] = {
            "n_faces": n_faces,
            "face": pts.face.tolist(),
            "bary": [[round(float(b), 8) for b in row] for row in pts.bary],
        }
    write_json(OUT, table)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
