"""Compute the 72 template landmarks from geometric rules and write ``landmarks.json``.

Run from the repo root: ``.venv/bin/python tools/make_landmarks.py``. Deterministic: the same
template gives the same table.

Units and frame: meters, template frame (Z up, subject faces -Y, subject's left is +X). Every
rule finds a left-side (+X) or midline vertex; each ``*_r`` landmark is the template vertex
nearest to the mirror image (-x, y, z) of its ``*_l`` twin. Rules are extreme points within
body regions, points on mesh cross-sections snapped to the nearest vertex, and, for bony
landmarks with no visible surface cue (cervicale, substernale, ASIS, PSIS, trochanterion,
malleoli, scapula), heights as fractions of stature ``H`` taken from adult anthropometric means
(ANSUR-style ratios). The mesh is coarse on the torso (~2 cm between vertices), so snapped
landmarks can sit up to ~1 cm from the rule's ideal point.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import trimesh
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

DATA = Path(__file__).resolve().parents[1] / "src" / "bodyshape" / "shape" / "data"

tpl = np.load(DATA / "template.npz")
V = tpl["vertices"].astype(np.float64)
F = tpl["faces"].astype(np.int64)
MESH = trimesh.Trimesh(V, F, process=False)
TREE = cKDTree(V)
X, Y, Z = V[:, 0], V[:, 1], V[:, 2]
Z_SOLE, Z_TOP = Z.min(), Z.max()
H = Z_TOP - Z_SOLE  # stature, m
_E = np.r_[F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]]
ADJ = sp.coo_matrix((np.ones(len(_E)), (_E[:, 0], _E[:, 1])), shape=(len(V),) * 2).tocsr()
MID = np.abs(X) < 1e-3  # midline vertices
LEFT = X > 1e-3


def h(frac: float) -> float:
    """Height z (m) at fraction ``frac`` of stature above the soles."""
    return Z_SOLE + frac * H


def unit(d) -> np.ndarray:
    """``d`` scaled to length 1."""
    return np.asarray(d, dtype=np.float64) / np.linalg.norm(d)


def argext(mask: np.ndarray, direction) -> int:
    """Vertex of ``mask`` furthest along ``direction``."""
    idx = np.flatnonzero(mask)
    return int(idx[np.argmax(V[idx] @ unit(direction))])


def nearest(point, mask: np.ndarray) -> int:
    """Vertex of ``mask`` nearest to ``point`` (m)."""
    idx = np.flatnonzero(mask)
    return int(idx[np.argmin(np.linalg.norm(V[idx] - point, axis=1))])


def components(mask: np.ndarray) -> list[np.ndarray]:
    """Connected components (vertex index arrays) of the sub-mesh induced by ``mask``."""
    idx = np.flatnonzero(mask)
    _, lab = connected_components(ADJ[idx][:, idx], directed=False)
    return [idx[lab == c] for c in np.unique(lab)]


def loop(origin, normal, near) -> np.ndarray:
    """(N, 3) points of the mesh cross-section by a plane, the loop whose centroid is nearest
    to ``near``."""
    loops = MESH.section(plane_normal=unit(normal), plane_origin=np.asarray(origin, float)).discrete
    return min(loops, key=lambda p: np.linalg.norm(p.mean(0) - near))


def loop_ext(origin, normal, near, direction, mask=LEFT, keep=None) -> int:
    """Snap to a vertex of ``mask`` the cross-section point furthest along ``direction``;
    ``keep`` optionally filters the loop points (boolean function of the points)."""
    p = loop(origin, normal, near)
    p = p[keep(p)] if keep is not None else p
    return nearest(p[np.argmax(p @ unit(direction))], mask)


def dense_spot(mask: np.ndarray, snap: np.ndarray, k: int = 12) -> int:
    """Vertex of ``snap`` nearest to the centroid of the ``k`` vertices of ``mask`` with the
    shortest mean edge length: the small, dense rings modelling the nipples and the navel."""
    idx = np.flatnonzero(mask)
    elen = np.asarray([np.linalg.norm(V[ADJ[j].indices] - V[j], axis=1).mean() for j in idx])
    return nearest(V[idx[np.argsort(elen)[:k]]].mean(0), snap)


def at_height(mask: np.ndarray, z: float) -> int:
    """Vertex of ``mask`` whose height is nearest to ``z`` (m)."""
    idx = np.flatnonzero(mask)
    return int(idx[np.argmin(np.abs(Z[idx] - z))])


def hext(z: float, direction, near_x: float = 0.0, x_at: float | None = None, keep=None) -> int:
    """``loop_ext`` on the horizontal section at height ``z`` (m): the loop nearest to
    (near_x, 0, z), optionally only its points within 1 cm of x = ``x_at``, snapped to +X."""
    if x_at is not None:
        keep = lambda p: np.abs(p[:, 0] - x_at) < 0.01  # noqa: E731
    return loop_ext([0, 0, z], [0, 0, 1], [near_x, 0, z], direction, LEFT, keep)


def girth(z: float) -> float:
    """Perimeter (m) of the horizontal section loop at height ``z`` nearest to (0, 0, z)."""
    return float(np.linalg.norm(np.diff(loop([0, 0, z], [0, 0, 1], [0, 0, z]), axis=0), axis=1).sum())


def build() -> list[tuple[str, int, str]]:
    """All landmarks as (name, vertex, description), midline and left rules, then mirrored."""
    L: dict[str, tuple[int, str]] = {}

    def add(name: str, i: int, desc: str) -> None:
        L[name] = (int(i), desc + (", left side (+X)" if name.endswith("_l") else ""))

    # ---- head: midline profile --------------------------------------------------------
    head = MID & (Z > h(0.85))
    add("vertex", argext(MID, [0, 0, 1]), "top of the head (highest point)")
    prn = argext(head, [0, -1, 0])  # pronasale, nose tip
    zp, yp = Z[prn], Y[prn]
    i = np.flatnonzero(head & (Y < yp + 0.03) & (Z > zp) & (Z < zp + 0.06))
    sellion = int(i[np.argmax(Y[i])])
    i = np.flatnonzero(head & (Z > Z[sellion]) & (Z < Z[sellion] + 0.04))
    add("glabella", i[np.argmin(Y[i])], "most anterior point of the forehead between the brows")
    add("sellion", sellion, "deepest point of the nasal root (bridge of the nose)")
    chin = MID & (Y < yp + 0.06) & (Z < zp - 0.03) & (Z > zp - 0.10)
    menton = argext(chin, [0, -1, -3])
    add("menton", menton, "lowest midline point of the chin")
    add("opisthocranion", argext(head, [0, 1, 0]), "most posterior point of the back of the head")

    # ---- neck and shoulder line ----------------------------------------------------------
    acromion = argext(LEFT & (Z > h(0.76)) & (X > 0.1), [0.53, 0, 0.85])  # 58 deg above horizontal
    front = MID & (Y < 0)
    back = MID & (Y > 0)
    sup = argext(front & (Z > Z[acromion] - 0.05) & (Z < Z[menton] - 0.01), [0, 1, -0.35])
    throat = argext(front & (Z > Z[sup]) & (Z < Z[menton]), [0, 1, 1])
    c7 = at_height(back & (Z > h(0.7)), h(0.855))
    i = np.flatnonzero(back & (Z > Z[c7]) & (Z < Z[menton] + 0.06))
    nuchal = int(i[np.argmin(Y[i])])  # concave corner where the neck meets the skull
    nf = at_height(front, (Z[sup] + Z[throat]) / 2)
    nb = at_height(back, (Z[c7] + Z[nuchal]) / 2)
    add("neck_front", nf, "front midline of the neck, midway between jugular notch and throat")
    add("neck_back", nb, "back midline of the neck at the neck-girth level")
    add("cervicale", c7, "C7 spinous process, back midline at the base of the neck (0.855 of stature)")
    add("suprasternale", sup, "jugular notch, top of the sternum between the clavicles")

    def side(a: int, b: int) -> int:  # lateral extreme of the section by the plane through a, b, x
        o = (V[a] + V[b]) / 2
        return loop_ext(o, np.cross([1, 0, 0], V[b] - V[a]), o, [1, 0, 0])

    ns = side(nf, nb)
    add("neck_side_l", ns, "side of the neck on the neck-girth plane (through neck_front and neck_back)")
    add("neck_base_side_l", side(sup, c7),
        "side neck point: the neck-base plane (through suprasternale and cervicale) at the shoulder ridge")
    add("acromion_l", acromion, "lateral tip of the acromion, outer corner of the shoulder")

    # ---- ear --------------------------------------------------------------------------
    ear = LEFT & (X > 0.06) & (Y > -0.055) & (Y < -0.015) & (Z > zp - 0.01) & (Z < Z[sellion] + 0.01)  # m
    ec = V[ear].min(0) / 2 + V[ear].max(0) / 2
    i = np.flatnonzero(ear & (np.abs(Y - ec[1]) < 0.008) & (np.abs(Z - ec[2]) < 0.012))
    canal = int(i[np.argmin(X[i])])  # deepest point of the concha
    dz, dy = Z - Z[canal], Y - Y[canal]  # tragion: just above and in front of the canal
    i = np.flatnonzero(ear & (dz > 0.003) & (dz < 0.009) & (dy > -0.012) & (dy < -0.003))
    add("tragion_l", i[np.argmax(X[i])], "notch above the tragus, front of the ear canal")

    # ---- armpit and arm ---------------------------------------------------------------
    z_ax = max(z for z in np.arange(h(0.70), h(0.80), 0.002) if len(components(Z < z)) >= 3)
    comps = components(Z < z_ax)
    arm = max(comps, key=lambda c: X[c].mean())
    trunk = max(comps, key=lambda c: len(c))
    band = lambda c: c[Z[c] > z_ax - 0.03]  # noqa: E731
    a, t = band(arm), band(trunk[X[trunk] > 0])
    dd = np.linalg.norm(V[a][:, None] - V[t][None], axis=2)
    ia, it = np.unravel_index(np.argmin(dd), dd.shape)
    apex = (V[a[ia]] + V[t[it]]) / 2  # armpit apex
    pit = LEFT & (Z > apex[2]) & (Z < apex[2] + 0.03) & (np.abs(X - apex[0]) < 0.015)
    add("axilla_front_l", argext(pit, [0, -1, 0]), "anterior armpit fold at the armpit apex level")
    add("axilla_back_l", argext(pit, [0, 1, 0]), "posterior armpit fold at the armpit apex level")
    for name, (i, desc) in arm_landmarks(arm).items():
        add(name, i, desc)

    # ---- torso --------------------------------------------------------------------------
    torso = LEFT & (Z < z_ax) & (Z > h(0.5))
    bust = dense_spot(torso & (X < apex[0]) & (Y < Y[sup]), LEFT)
    add("bust_point_l", bust, "nipple (bust point)")
    add("substernale", at_height(front, Z[sup] - 0.11 * H),
        "bottom of the sternum (xiphoid), 0.11 of stature below suprasternale")
    add("scapula_inferior_angle_l", hext(Z[bust], [0, 1, 0], x_at=0.095),
        "inferior angle of the scapula: on the back 9.5 cm from the midline, at bust-point height")
    zs = np.arange(h(0.58), Z[bust], 0.005)
    zw = zs[int(np.argmin([girth(z) for z in zs]))]  # natural waist: smallest torso girth
    add("rib10_l", hext(zw + 0.02 * H, [1, -0.25, 0]),
        "lowest point of the rib cage (10th rib), side of the torso, 0.02 of stature above the waist")
    add("waist_front", at_height(front, zw), "front midline at the natural waist (smallest torso girth)")
    add("waist_back", at_height(back, zw), "back midline at the natural waist")
    add("waist_l", hext(zw, [1, 0, 0]), "side of the torso at the natural waist")
    navel = dense_spot((np.abs(X) < 0.05) & (Y < 0) & (Z > h(0.5)) & (Z < zw), front)
    add("omphalion", navel, "navel centre")
    add("iliac_crest_l", hext(Z[navel], [1, 0, 0]), "top of the iliac crest at the side, at navel height")
    za = Z[navel] - 0.05 * H
    add("asis_l", hext(za, [0, -1, 0], x_at=0.75 * loop([0, 0, za], [0, 0, 1], [0, 0, za])[:, 0].max()),
        "anterior superior iliac spine: front, 0.05 of stature below the navel, at 75% of the half-width")
    zq = za + 0.01 * H
    add("psis_l", hext(zq, [0, 1, 0], x_at=0.3 * loop([0, 0, zq], [0, 0, 1], [0, 0, zq])[:, 0].max()),
        "posterior superior iliac spine (dimple of Venus): back, 0.01 of stature above the ASIS")
    crotch = argext(MID & (Z < Z[navel]), [0, 0, -1])
    add("crotch", crotch, "lowest point of the crotch between the legs")
    troch = hext(h(0.516), [1, 0, 0], near_x=0.1)
    add("trochanter_l", troch, "greater trochanter (trochanterion), side of the hip, 0.516 of stature")
    add("buttock_l", argext(LEFT & (Z > Z[crotch] - 0.05) & (Z < Z[navel]), [0, 1, 0]),
        "most posterior point of the buttock")

    # ---- leg ----------------------------------------------------------------------------
    leg = LEFT & (Z < Z[crotch])
    zk, zt = h(0.28), (Z[troch] + h(0.28)) / 2
    add("patella_l", hext(h(0.29), [0, -1, 0], 0.13),
        "front of the kneecap at mid-patella height (0.29 of stature)")
    add("knee_lateral_l", hext(zk, [1, 0, 0], 0.13),
        "lateral femoral epicondyle, outer knee (0.28 of stature)")
    add("knee_medial_l", hext(zk, [-1, 0, 0], 0.13),
        "medial femoral epicondyle, inner knee (0.28 of stature)")
    add("thigh_front_l", hext(zt, [0, -1, 0], 0.1), "front of the thigh midway between trochanter and knee")
    add("calf_back_l", argext(leg & (Z > h(0.1)) & (Z < zk), [0, 1, 0]), "most posterior point of the calf")
    ya = loop([0, 0, h(0.1)], [0, 0, 1], [0.17, 0, h(0.1)]).mean(0)[1]  # shank centre above the foot
    mid_y = lambda p: np.abs(p[:, 1] - ya) < 0.02  # noqa: E731
    add("malleolus_lateral_l", hext(h(0.04), [1, 0, 0], 0.17, keep=mid_y),
        "lateral malleolus (0.04 of stature)")
    add("malleolus_medial_l", hext(h(0.05), [-1, 0, 0], 0.17, keep=mid_y),
        "medial malleolus (0.05 of stature)")
    foot = leg & (Z < h(0.06))
    add("heel_l", argext(foot, [0, 1, 0]), "most posterior point of the heel")
    add("toe_tip_l", argext(foot, [0, -1, 0]), "tip of the longest toe (most anterior point of the foot)")

    rows = []
    for n in ORDER:
        if n.endswith("_r"):
            i, desc = L[n[:-2] + "_l"]
            mirror = int(TREE.query(V[i] * [-1.0, 1.0, 1.0])[1])  # vertex nearest to (-x, y, z)
            rows.append((n, mirror, desc.replace("left side (+X)", "right side (-X)")))
        else:
            rows.append((n, *L[n]))
    return rows


def arm_landmarks(arm: np.ndarray) -> dict[str, tuple[int, str]]:
    """Elbow, wrist and middle-fingertip landmarks of the left arm, given ``arm``: the arm's
    vertices below the armpit. The arm centreline is traced by cross-sections; the elbow is
    where it bends most, the wrist the thinnest forearm section before the hand."""
    in_arm = np.isin(np.arange(len(V)), arm)
    c0 = V[arm].mean(0)
    ax = np.linalg.svd(V[arm] - c0)[2][0]
    ax *= np.sign(ax[0])  # outward and down

    def trace(origin, axis, t0, t1):
        """Centroids and girths of the arm sections along ``axis``, up to the hand split."""
        cs, ps = [], []
        for tt in np.arange(t0, t1, 0.005):
            sec = MESH.section(axis, origin + tt * axis)
            loops = [p for p in (sec.discrete if sec is not None else []) if in_arm[TREE.query(p[0])[1]]]
            if not loops and not cs:
                continue  # still in the shoulder, merged with the trunk
            if len(loops) != 1:
                break  # thumb or fingers split off: end of the palm
            cs.append(loops[0].mean(0))
            ps.append(np.linalg.norm(np.diff(loops[0], axis=0), axis=1).sum())
        return np.array(cs), np.array(ps)

    t = (V[arm] - c0) @ ax
    cs, _ = trace(c0, ax, t.min() + 0.01, t.max())
    k = 6  # 3 cm window
    j0, j1 = int(0.25 * len(cs)), int(0.75 * len(cs))  # elbow: the middle half of the arm
    ang = [np.arccos(np.clip(unit(cs[j] - cs[j - k]) @ unit(cs[j + k] - cs[j]), -1, 1))
           for j in range(j0, j1)]
    je = j0 + int(np.argmax(ang))
    elbow, shoulder = cs[je], cs[0]
    fa = unit(cs[-1] - elbow)  # forearm axis
    ws, wp = trace(elbow, fa, 0.0, 0.5)
    jw = len(ws) // 2 + int(np.argmin(wp[len(wp) // 2:]))
    wrist = ws[jw]
    ua = unit(elbow - shoulder)
    hinge = unit(np.cross(ua, fa))
    hinge *= np.sign(hinge[0])  # lateral
    b = unit(ua + fa)
    el = arm[np.abs((V[arm] - elbow) @ b) < 0.012]
    out = {"elbow_lateral": (el[np.argmax(V[el] @ hinge)], "lateral humeral epicondyle, outer elbow"),
           "elbow_medial": (el[np.argmin(V[el] @ hinge)], "medial humeral epicondyle, inner elbow")}
    # hand: thumb splits off first, then the four fingers
    s = (V[arm] - wrist) @ fa
    thumb = fingers = None
    for cut in np.arange(0.02, 0.2, 0.005):
        comps = [c for c in components(np.isin(np.arange(len(V)), arm[s > cut])) if len(c) >= 5]
        if thumb is None and len(comps) == 2:
            thumb = min(comps, key=len)
        if len(comps) >= 4:
            fingers = sorted(comps, key=lambda c: -((V[c] - wrist) @ fa).max())[:4]
            break
    r = V[thumb].mean(0) - wrist
    r = unit(r - (r @ fa) * fa)  # radial (thumb-side) direction
    fingers.sort(key=lambda c: -(V[c].mean(0) @ r))  # index, middle, ring, little
    mid = fingers[1]
    wr = arm[np.abs((V[arm] - wrist) @ fa) < 0.008]
    out["radial_styloid"] = (wr[np.argmax(V[wr] @ r)], "radial styloid, thumb side of the wrist")
    out["ulnar_styloid"] = (wr[np.argmin(V[wr] @ r)], "ulnar styloid, little-finger side of the wrist")
    out["dactylion"] = (mid[np.argmax(np.linalg.norm(V[mid] - wrist, axis=1))], "tip of the middle finger")
    return {f"{n}_l": (int(i), d) for n, (i, d) in out.items()}


# output order, head to feet; "*" marks a left/right pair (written as name_l, name_r)
_ORDER = """vertex glabella sellion opisthocranion tragion* menton neck_front neck_back neck_side*
cervicale suprasternale neck_base_side* acromion* axilla_front* axilla_back* bust_point*
substernale scapula_inferior_angle* elbow_lateral* elbow_medial* rib10* waist_front waist_back
waist* omphalion iliac_crest* radial_styloid* ulnar_styloid* asis* psis* trochanter* buttock*
crotch dactylion* thigh_front* patella* knee_lateral* knee_medial* calf_back* malleolus_medial*
malleolus_lateral* heel* toe_tip*""".split()
ORDER = [n.rstrip("*") + s for n in _ORDER for s in (("_l", "_r") if n.endswith("*") else ("",))]


def main() -> None:
    rows = build()
    names = [n for n, _, _ in rows]
    idx = [i for _, i, _ in rows]
    for n, i, _ in rows:
        print(f"{n:26s} {i:6d} {np.round(V[i], 4)}")
    assert len(rows) == 72 and len(set(names)) == 72 and len(set(idx)) == 72, (len(rows), len(set(idx)))
    table = {"landmarks": [{"name": n, "vertex": int(i), "description": d} for n, i, d in rows]}
    (DATA / "landmarks.json").write_text(json.dumps(table, indent=2) + "\n")
    print(f"wrote {len(rows)} landmarks to {DATA / 'landmarks.json'}")


if __name__ == "__main__":
    main()
