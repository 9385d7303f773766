"""Synthetic data: end-to-end throughput, rasterizer vs pyrender/OSMesa, disk, pictures.

1. Throughput of ``write_dataset`` (shape decode, garments, per-view posing, cameras, two
   renders, calibration, keypoints, shard writing), front+side pairs per second, with 1 and
   2 worker processes, for the realistic default (``SynthSpec()``) at the default 512 px
   frame and at a 1024 px frame, and for the clean preset (``SynthSpec.clean()``); shard
   bytes per sample -> disk per 100k samples; and the cost of the part label maps, which the
   dataset computes from the stored keypoints when it streams (``ShardDataset(parts=True)``).
2. How much the frame size matters: the same samples rendered with 512 and 1024 px frames,
   IoU of the stored (thresholded) 128 px canvases.
3. The exact numba rasterizer against pyrender on OSMesa (one thread each), on the same
   posed bodies and cameras: ms per silhouette, their ratio, and pixel agreement. pyrender
   gets a new mesh per silhouette, as synthetic data needs (every body and pose differs).
   Needs ``apt install libosmesa6`` and ``pip install pyrender pyopengl==3.1.7``; skipped
   (and said so) when they are missing.
4. Agreement with the numpy posing that synthesis used before the torch kinematics: the 24
   samples of ``tests/data/synth_reference_seed11.npz`` (written by that code) made again,
   and the largest difference of every stored array.
5. Pictures: 8 random realistic samples (front and side canvases and their part labels)
   -> docs/synth_samples.png, and one sample under 8 draws of each augmentation
   (``Augment()``, ``Augment.measured()``) -> docs/augment.png.

With ``--against REF`` (a git commit), the default-frame throughput is also measured for
the code at REF (its ``src/`` from ``git archive``, in a subprocess, same interpreter and
shape model; the clean preset where the tree has one, since REF may predate it),
alternating with this tree's runs, so the two are compared as ratios from one
run on one machine.

Usage: python benchmarks/bench_synth.py [--n 3000] [--n-raster 100] [--against REF]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
os.environ.setdefault("LP_NUM_THREADS", "1")  # llvmpipe: one core, as our rasterizer

import numpy as np
from report import table, write_section
from threadpoolctl import threadpool_limits

from bodyshape.body import BodyModel
from bodyshape.dataset.shard_format import read_shard
from bodyshape.dataset.stream import Augment, augment_mask
from bodyshape.render.camera import Camera, CameraSpec, sample_camera, vertex_bounds
from bodyshape.render.raster import rasterize_silhouette, silhouette
from bodyshape.synth.generate import SynthSpec, make_sample, make_sample_frames
from bodyshape.synth.poses import sample_poses
from bodyshape.synth.shards import write_dataset

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "src/bodyshape/data/shape_model.npz"


PRESETS = {"realistic": SynthSpec, "clean": SynthSpec.clean}


def throughput(model_path: Path, n: int, frame: int, workers: int, tmp: Path,
               preset: str = "realistic") -> tuple[float, float]:
    """(pairs per second, shard bytes per sample) of one fresh ``write_dataset`` run."""
    out = tmp / f"tp-{preset}-{frame}-{workers}"
    spec = PRESETS[preset](camera=CameraSpec(long_side=frame))
    t0 = time.perf_counter()
    write_dataset(model_path, out, n, 0, spec, workers=workers, shard_size=max(1, n // 8),
                  progress=False)
    dt = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in out.glob("shard-*.npz"))
    shutil.rmtree(out)
    return n / dt, size / n


_RATE_SCRIPT = """
import shutil, sys, time
from bodyshape.render.camera import CameraSpec
from bodyshape.synth.generate import SynthSpec
from bodyshape.synth.shards import write_dataset
model, out = sys.argv[1], sys.argv[2]
n, frame, workers = (int(x) for x in sys.argv[3:6])
make = getattr(SynthSpec, "clean", SynthSpec)  # the same work on trees before presets
spec = make(camera=CameraSpec(long_side=frame))
write_dataset(model, out + "-warm", 4, 0, spec, shard_size=4, progress=False)
t0 = time.perf_counter()
write_dataset(model, out, n, 0, spec, workers=workers, shard_size=max(1, n // 8), progress=False)
print(n / (time.perf_counter() - t0))
shutil.rmtree(out); shutil.rmtree(out + "-warm")
"""


def throughput_of_source(src: Path, model_path: Path, n: int, frame: int, workers: int,
                         tmp: Path) -> float:
    """Pairs per second of ``write_dataset`` from the package in ``src`` (a subprocess)."""
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run([sys.executable, "-c", _RATE_SCRIPT, str(model_path),
                          str(tmp / f"src-{frame}-{workers}"), str(n), str(frame), str(workers)],
                         env=env, check=True, capture_output=True, text=True, cwd=tmp)
    return float(out.stdout.strip().splitlines()[-1])


def checkout_source(ref: str, tmp: Path) -> Path:
    """The ``src/`` folder of commit ``ref`` (``git archive``), extracted under ``tmp``."""
    dest = tmp / f"src-at-{ref}"
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src"


def frame_size_agreement(body: BodyModel, n: int, frames=(512, 1024), reference=2048
                         ) -> dict[int, list[float]]:
    """IoU of the stored canvases of the same samples rendered with each of ``frames`` px
    frames against a fine ``reference`` px render (the camera draws do not depend on the
    frame size, so the geometry is identical)."""
    ref_spec = SynthSpec(camera=CameraSpec(long_side=reference))
    ious: dict[int, list[float]] = {f: [] for f in frames}
    for i in range(n):
        ref = make_sample(body, i, 1, ref_spec)
        for f in frames:
            s = make_sample(body, i, 1, SynthSpec(camera=CameraSpec(long_side=f)))
            for x, y in ((s.front, ref.front), (s.side, ref.side)):
                x, y = x >= 0.5, y >= 0.5
                ious[f].append(float((x & y).sum() / (x | y).sum()))
    return ious


def posed_views(body: BodyModel, n: int, frame: int) -> list[tuple[np.ndarray, Camera]]:
    """n (vertices, camera) pairs: random bodies, poses, yaws and phone cameras."""
    rng = np.random.default_rng(7)
    spec = CameraSpec(long_side=frame)
    drawn = body.shape.sample(n, rng)
    pose = sample_poses(rng, n, SynthSpec().front_pose)
    posed = body.pose(drawn.vertices.astype(np.float64), pose.angles)
    views = []
    for v in posed:
        v = body.turn(v, rng.uniform(-np.pi, np.pi))
        b = vertex_bounds(v)
        views.append((v, sample_camera(rng, spec, b, float(b[0, 2]))))
    return views


def reference_agreement(body: BodyModel) -> dict[str, float]:
    """Largest absolute difference of each shard array between the pre-torch-kinematics
    reference samples and the same samples made now (0.0: bit-identical)."""
    from bodyshape.dataset.shard_format import shard_arrays

    ref = np.load(ROOT / "tests" / "data" / "synth_reference_seed11.npz")
    got = shard_arrays([make_sample(body, i, 11, SynthSpec.clean())
                        for i in range(len(ref["index"]))])
    got["pose_angles"] = got["pose_angles"][:, 0]  # one pose per view since; equal rows
    return {k: float(np.abs(got[k].astype(np.float64) - ref[k].astype(np.float64)).max())
            for k in ref.files}


def pyrender_silhouettes(views, faces):
    """(ms per silhouette, masks, version) with pyrender on OSMesa, or (None, reason,
    None)."""
    try:
        import pyrender
        import trimesh
    except Exception as exc:  # ImportError, or OpenGL failing to find OSMesa
        return None, f"pyrender unavailable ({type(exc).__name__}: {exc})", None
    cam0 = views[0][1]
    try:
        renderer = pyrender.OffscreenRenderer(cam0.width, cam0.height)
    except Exception as exc:
        return None, f"pyrender/OSMesa cannot start ({type(exc).__name__}: {exc})", None
    flip = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV camera axes -> OpenGL camera axes
    masks = []
    t0 = 0.0
    for k, (v, cam) in enumerate([views[0]] + list(views)):  # the first one warms up
        if k == 1:
            masks, t0 = [], time.perf_counter()
        renderer.viewport_width, renderer.viewport_height = cam.width, cam.height
        scene = pyrender.Scene()
        scene.add(pyrender.Mesh.from_trimesh(trimesh.Trimesh(v, faces, process=False)))
        world_to_cam = np.eye(4)
        world_to_cam[:3, :3], world_to_cam[:3, 3] = cam.R, cam.t
        K = cam.K
        # pyrender's principal point is measured from the bottom-left in y.
        pc = pyrender.IntrinsicsCamera(K[0, 0], K[1, 1], K[0, 2], cam.height - K[1, 2],
                                       znear=0.05, zfar=100.0)
        scene.add(pc, pose=np.linalg.inv(world_to_cam) @ flip)
        depth = renderer.render(scene, flags=pyrender.RenderFlags.DEPTH_ONLY)
        masks.append(depth > 0)
    dt = time.perf_counter() - t0
    renderer.delete()
    return dt / len(views) * 1e3, masks, pyrender.__version__


def label_rate(root: Path, n: int) -> float:
    """Milliseconds per pair to label both views' masks while streaming (``parts=True``)."""
    from bodyshape.dataset.stream import ShardDataset

    rates = []
    for parts in (False, True):
        t0 = time.perf_counter()
        for k, _ in enumerate(ShardDataset(root, parts=parts)):
            if k + 1 >= n:
                break
        rates.append((time.perf_counter() - t0) / n * 1e3)
    return rates[1] - rates[0]


STAGES = (("garments (dress)", "synth/garments.py", "dress"),
          ("posing both views", "synth/generate.py", "_posed_views"),
          ("cameras", "render/camera.py", "sample_camera"),
          ("silhouettes", "render/raster.py", "silhouette"),
          ("keypoints", "synth/generate.py", "_keypoints"),
          ("calibration", "calibrate.py", "calibrate"))


def stage_costs(body: BodyModel, n: int) -> dict[str, float]:
    """Share of one core's synthesis time per stage: ``make_sample_frames`` of ``n``
    realistic samples under cProfile (cumulative time of each stage's function over the
    profiled total; the profiler's overhead inflates every stage alike)."""
    import cProfile
    import pstats

    spec = SynthSpec()
    make_sample_frames(body, 0, 5, spec)  # warm-up (JIT)
    prof = cProfile.Profile()
    with threadpool_limits(1):
        prof.enable()
        for i in range(n):
            make_sample_frames(body, i, 5, spec)
        prof.disable()
    stats = pstats.Stats(prof).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    total = sum(v[3] for k, v in stats.items() if k[2] == "make_sample_frames")
    return {label: sum(v[3] for k, v in stats.items()
                       if k[0].endswith(path) and k[2] == name) / total
            for label, path, name in STAGES}


def pictures(model_path: Path, tmp: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bodyshape.parts import colour_labels, part_labels

    out = tmp / "pictures"
    write_dataset(model_path, out, 8, 2026, SynthSpec(), shard_size=8, progress=False)
    data = read_shard(out / "shard-00000.npz")
    fig, axes = plt.subplots(4, 8, figsize=(12, 6.8))
    for k in range(8):
        for v, name in enumerate(("front", "side")):
            ax = axes[2 * v, k]
            ax.imshow(data.masks[k, v], cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"#{k} {name}" + (" (m)" if v and data.side_mirrored[k] else ""),
                         fontsize=7)
            labels = part_labels(data.masks[k, v] / 255.0, data.keypoints[k, v])
            axes[2 * v + 1, k].imshow(colour_labels(labels))
            axes[2 * v + 1, k].plot(*data.keypoints[k, v].T, "k.", ms=2)
            axes[2 * v + 1, k].set_title("parts + keypoints", fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle("8 realistic synthetic samples (SynthSpec(), 128 px canvases; (m): side view "
                 "mirrored to face right) and their part labels", fontsize=9)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "synth_samples.png", dpi=80)
    plt.close(fig)

    fig, axes = plt.subplots(4, 9, figsize=(13, 7.2))
    for row, (label, aug) in enumerate((("Augment()", Augment()),
                                        ("Augment.measured()", Augment.measured()))):
        for v in range(2):
            ax_row = axes[2 * row + v]
            base = data.masks[0, v].astype(np.float32) / 255.0
            ax_row[0].imshow(base, cmap="gray")
            ax_row[0].set_title(f"{label}\nclean", fontsize=7)
            for k in range(8):
                a = augment_mask(base, np.random.default_rng([v, k]), aug)
                diff = np.stack([a, base, base], axis=-1)  # added: red, removed: cyan
                ax_row[k + 1].imshow(diff)
                ax_row[k + 1].set_title(f"draw {k}", fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle("The generic augmentation and the one fitted to MediaPipe's measured errors "
                 "on one sample: red = added, cyan = removed", fontsize=9)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "augment.png", dpi=80)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--n", type=int, default=3000, help="samples per throughput run")
    ap.add_argument("--n-raster", type=int, default=100, help="bodies for the raster race")
    ap.add_argument("--n-agree", type=int, default=200, help="samples for 512 vs 1024 px")
    ap.add_argument("--against", default=None,
                    help="a git commit whose synthesis speed to measure alongside this tree's")
    a = ap.parse_args()
    model_path = Path(a.model)
    body_model = BodyModel.load(model_path)
    tmp = Path(tempfile.mkdtemp(prefix="bench_synth-"))
    res: dict = {"n": a.n, "cpu_count": os.cpu_count()}
    try:
        write_dataset(model_path, tmp / "warm", 4, 0, shard_size=4, progress=False)  # JIT
        rows = []
        for preset, frame in (("realistic", 512), ("realistic", 1024), ("clean", 512)):
            for workers in (1, 2):
                rate, per = throughput(model_path, a.n, frame, workers, tmp, preset)
                key = "" if preset == "realistic" else "_clean"
                res[f"pairs_per_s_frame{frame}_w{workers}{key}"] = rate
                res[f"bytes_per_sample{key}"] = per
                rows.append([preset + (" (default)" if preset == "realistic" else ""),
                             f"{frame} px" + (" (default)" if frame == 512 else ""), workers,
                             f"{rate:.0f}"])
                print(rows[-1], flush=True)
        labelled = tmp / "labelled"
        write_dataset(model_path, labelled, 500, 3, SynthSpec(), shard_size=250, progress=False)
        res["label_ms_per_pair"] = label_rate(labelled, 500)
        res["stage_share"] = stage_costs(body_model, min(a.n, 400))
        res["gb_per_100k"] = res["bytes_per_sample"] * 1e5 / 1e9
        against = ""
        if a.against:
            src = checkout_source(a.against, tmp)
            mine = (ROOT / "src").resolve()
            rows_ref = []
            for workers in (1, 2):
                # Alternate the two trees, twice each, so that drift in the machine's speed
                # falls on both alike.
                rates = {"this": [], "ref": []}
                for _ in range(2):
                    rates["this"].append(throughput_of_source(mine, model_path, a.n, 512,
                                                              workers, tmp))
                    rates["ref"].append(throughput_of_source(src, model_path, a.n, 512,
                                                             workers, tmp))
                this, ref = (float(np.mean(rates[k])) for k in ("this", "ref"))
                res[f"against_w{workers}"] = {"this": this, "ref": ref, "ratio": this / ref}
                rows_ref.append([workers, f"{this:.0f}", f"{ref:.0f}", f"{this / ref:.2f}"])
                print(rows_ref[-1], flush=True)
            res["against"] = a.against
            against = ("\n\nThis tree against commit `" + a.against + "` (512 px frames, the "
                       "mean of two alternating runs each):\n\n" + table(
                           ["workers", "pairs / s, this tree", f"pairs / s, {a.against}",
                            "ratio"], rows_ref))

        with threadpool_limits(1):
            ious = frame_size_agreement(body_model, a.n_agree)
        for f, v in ious.items():
            res[f"iou_{f}_vs_2048_mean"] = float(np.mean(v))
            res[f"iou_{f}_vs_2048_min"] = float(np.min(v))

        with threadpool_limits(1):
            views = posed_views(body_model, a.n_raster, 512)
            faces = body_model.faces.astype(np.int64)
            for closed in (False, True):  # warm-up (JIT)
                silhouette(views[0][0], faces, views[0][1], closed)
            timings = {}
            ours = {}
            for closed in (False, True):
                t0 = time.perf_counter()
                ours[closed] = [silhouette(v, faces, c, closed) for v, c in views]
                timings[closed] = (time.perf_counter() - t0) / len(views) * 1e3
            # Rasterization alone (projection excluded), as a lower bound of our cost.
            pix = [c.project(v)[0] for v, c in views]
            t0 = time.perf_counter()
            for p, (_, c) in zip(pix, views):
                rasterize_silhouette(p, faces, c.width, c.height, keep=-1)
            raster_only = (time.perf_counter() - t0) / len(views) * 1e3
        res["ours_ms"] = timings[False]
        res["ours_closed_ms"] = timings[True]
        res["ours_closed_raster_only_ms"] = raster_only
        res["closed_equals_open"] = all(np.array_equal(x, y)
                                        for x, y in zip(ours[False], ours[True]))
        pyr_ms, pyr, res["pyrender_version"] = pyrender_silhouettes(views, faces)
        if pyr_ms is None:
            res["pyrender"] = pyr
            race = f"pyrender was not measured: {pyr}."
        else:
            agree = [float((x & y).sum() / (x | y).sum()) for x, y in zip(ours[False], pyr)]
            res.update(pyrender_ms=pyr_ms, speedup=pyr_ms / timings[False],
                       speedup_closed=pyr_ms / timings[True],
                       pyrender_iou_mean=float(np.mean(agree)),
                       pyrender_iou_min=float(np.min(agree)))
            race = table(["renderer (one core)", "ms / silhouette", "speed-up vs pyrender"], [
                [f"pyrender {res['pyrender_version']} on OSMesa (llvmpipe, new mesh each)",
                 f"{pyr_ms:.2f}", "1"],
                ["ours, all faces", f"{timings[False]:.2f}", f"{res['speedup']:.1f}x"],
                ["ours, front faces (closed mesh; what synth uses)", f"{timings[True]:.2f}",
                 f"{res['speedup_closed']:.1f}x"],
            ]) + (f"\n\nSame {len(views)} posed bodies (13,348 vertices, 26,692 faces) and "
                  f"random phone cameras, 512 px frames, projection included. pyrender's "
                  f"depth mask against ours: IoU mean {res['pyrender_iou_mean']:.5f}, min "
                  f"{res['pyrender_iou_min']:.5f} (OpenGL's own pixel rules differ on edge "
                  f"pixels).")
        with threadpool_limits(1):
            diffs = reference_agreement(body_model)
        res["reference_max_abs_diff"] = diffs
        pictures(model_path, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    label_ms = res["label_ms_per_pair"]
    best = res["pairs_per_s_frame512_w2"]
    with_labels = 1.0 / (1.0 / best + label_ms / 2e3)  # labels on 2 cores as well
    res["pairs_per_s_with_labels_w2"] = with_labels
    goal = "meets" if with_labels >= 300 else "misses"
    share_table = table(["stage", "share of one core"],
                        [[k, f"{100 * v:.0f} %"] for k, v in res["stage_share"].items()])
    body = f"""End to end (`write_dataset`: shape decode, garments, per-view posing, two cameras,
two renders, two calibrations, keypoints, shard writing), front+side pairs per second,
{a.n} samples per run, default 128 px canvas, bit-packed masks:

{table(["preset", "frame", "workers", "pairs / s"], rows)}{against}

Part label maps are not stored: shards keep each view's keypoints (60 floats) and the
dataset labels the (augmented) masks with `parts.part_labels` as it streams, at
{label_ms:.2f} ms per pair. With 2 cores shared by synthesis and labelling, realistic pairs
with label maps come at **{with_labels:.0f} pairs/s**, which {goal} the 300 pairs/s goal on
this machine.

Where one core's time goes (realistic preset, {min(a.n, 400)} samples under cProfile, share of
`make_sample_frames`; the rest is shape decoding, yaw, cropping and bookkeeping):

{share_table}

No single stage dominates: the work per pair is a 13k-vertex body posed once per view,
naked and dressed, a garment offset surface, two camera solves and two silhouettes, each a
few milliseconds of numpy/torch/numba calls. Reaching 300 pairs/s on 2 cores would need
~{2e3 / 300:.1f} ms per pair per core, a {300 / with_labels:.1f}x cut, i.e. batching
whole shards through the kinematics and rasterizer rather than a faster stage.

Disk: {res['bytes_per_sample']:.0f} bytes per realistic sample, **{res['gb_per_100k']:.2f} GB per 100k
samples** (packed 128 px masks; `--masks uint8` stores 8x more mask bytes).

Frame size: the same {a.n_agree} samples rendered with 512 px and 1024 px frames, against
2048 px renders (IoU of the stored 128 px canvases): 512 px mean
{res['iou_512_vs_2048_mean']:.4f} (min {res['iou_512_vs_2048_min']:.4f}), 1024 px mean
{res['iou_1024_vs_2048_mean']:.4f} (min {res['iou_1024_vs_2048_min']:.4f}). The differences
are sub-pixel shifts of the crop (the person's box edges are whole frame pixels, so its
centre and height move by up to half a frame pixel), smaller than the generic augmentation's
0.7 px boundary jitter. 512 px is the default because it is
{res['pairs_per_s_frame512_w2'] / res['pairs_per_s_frame1024_w2']:.2f}x faster with 2 workers.

Rasterizer against pyrender/OSMesa:

{race}

Front-face culling gives identical masks on these closed meshes: {res['closed_equals_open']}.

Against the numpy posing used before the kinematics moved to torch (24 reference samples,
`tests/data/synth_reference_seed11.npz`, made again with `SynthSpec.clean()`, the spec of
the time): bit-identical arrays:
{", ".join(f"`{k}`" for k, d in diffs.items() if d == 0.0)}; differing only by float
rounding: {", ".join(f"`{k}` (max {d:.1e})" for k, d in diffs.items() if d != 0.0) or "none"}.
The cameras are framed on the posed vertices by a root solve, which carries their last-bit
differences; every mask and calibration is unchanged.
Pictures: `docs/synth_samples.png` (8 realistic samples and their part labels),
`docs/augment.png` (both augmentations).
"""
    write_section("synth", "Synthetic data: throughput, rasterizer, disk", body, res)
    print(body)


if __name__ == "__main__":
    main()
