"""PCA shape model: explained variance, held-out reconstruction, sampling vs. population.

1. Explained variance of the shipped model at 10/20/50 components, and how many components
   reach 95 % and 99 %.
2. Reconstruction error (mean vertex distance after Procrustes alignment) at 10/20/50
   components on held-out meshes: fresh anny bodies in the template topology, and fresh
   ``soma`` bodies registered onto the template (the registered kind the model is built from).
3. The same for a model fitted on bodies *without* local changes (phenotypes only), tested on
   bodies of both kinds: how much of the shape space the six phenotype knobs span.
4. Bodies sampled from the model (Gaussian, per-sex Gaussian, Gaussian mixture) against a
   fresh source population: stature, volume, chest/waist/hip girths (mean, std and the
   Kolmogorov-Smirnov distance to the population), plus a picture of 20 samples.

Usage: ANNY_CACHE_DIR=... python benchmarks/bench_pca.py [--n-test 200] [--n-reg 30]
       [--n-plain 2000] [--n-sample 500]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.stats import ks_2samp
from threadpoolctl import threadpool_limits

from report import table, write_section

from bodyshape.measure import body_stats
from bodyshape.plotting import bodies_figure
from bodyshape.shape import anny_bodies as ab
from bodyshape.shape.anny_landmarks import transferred_landmarks
from bodyshape.shape.pca import ShapeModel, reconstruction_error
from bodyshape.shape.register import register
from bodyshape.shape.template import load_template

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "src/bodyshape/data/shape_model.npz"
KS = (10, 20, 50)


def recon_row(model: ShapeModel, meshes: np.ndarray) -> list[float]:
    return [float(reconstruction_error(model, meshes, k).mean() * 1e3)
            for k in KS if k <= model.n_components]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--n-reg", type=int, default=30)
    ap.add_argument("--n-plain", type=int, default=2000)
    ap.add_argument("--n-sample", type=int, default=500)
    ap.add_argument("--seed", type=int, default=5000)
    a = ap.parse_args()
    threadpool_limits(1)
    template = load_template()
    model = ShapeModel.load(a.model)
    res: dict = {}

    # 1. explained variance
    cum = model.cumulative_variance
    ev = {k: float(cum[k - 1]) for k in KS if k <= len(cum)}
    res["explained"] = ev
    res["components_95"] = model.components_for(0.95)
    res["components_99"] = model.components_for(0.99)

    # 2. held-out reconstruction
    rng = np.random.default_rng(a.seed)
    test_local = ab.body_meshes(ab.sample_body_params(a.n_test, rng)).vertices
    test_plain = ab.body_meshes(ab.sample_body_params(a.n_test, rng, local=None)).vertices
    reg_params = ab.sample_body_params(a.n_reg, rng)
    soma = ab.body_meshes(reg_params, "soma")
    registered = np.stack([
        register(v, soma.faces, transferred_landmarks("soma", v, soma.faces, template), template,
                 model).vertices for v in soma.vertices])
    # 3. phenotype-only model
    plain_train = ab.body_meshes(ab.sample_body_params(a.n_plain, rng, local=None)).vertices
    plain = ShapeModel.fit(plain_train, template.faces, template.hash, template.landmark_names,
                           50, rng=np.random.default_rng(0))
    rows = [
        ["shipped (with local changes)", "anny, with local changes", *recon_row(model, test_local)],
        ["shipped (with local changes)", "anny, phenotypes only", *recon_row(model, test_plain)],
        ["shipped (with local changes)", "soma, registered", *recon_row(model, registered)],
        ["phenotypes only", "anny, with local changes", *recon_row(plain, test_local)],
        ["phenotypes only", "anny, phenotypes only", *recon_row(plain, test_plain)],
    ]
    res["reconstruction_mm"] = {f"{r[0]} / {r[1]}": r[2:] for r in rows}
    res["plain_components_95"] = plain.components_for(0.95)
    res["plain_components_99"] = plain.components_for(0.99)
    res["plain_explained"] = {k: float(plain.cumulative_variance[k - 1]) for k in KS}

    # 4. sampling vs population
    population = ab.body_meshes(ab.sample_body_params(a.n_sample, rng)).vertices
    pop = body_stats(population, template)
    fields = ("stature", "volume", "chest", "waist", "hip")
    scale = {"stature": 100, "volume": 1000, "chest": 100, "waist": 100, "hip": 100}
    unit = {"stature": "cm", "volume": "L", "chest": "cm", "waist": "cm", "hip": "cm"}
    srows = [["anny population"] + [f"{getattr(pop, f).mean() * scale[f]:.1f} ± "
                                     f"{getattr(pop, f).std() * scale[f]:.1f}" for f in fields]
             + ["-"]]
    res["sampling"] = {}
    draws = {}
    for method in ("gaussian", "per-sex", "gmm"):
        draw = model.sample(a.n_sample, np.random.default_rng(a.seed + 1), method=method)
        draws[method] = draw
        st = body_stats(draw.vertices.astype(np.float64), template)
        ks = {f: float(ks_2samp(getattr(st, f), getattr(pop, f)).statistic) for f in fields}
        res["sampling"][method] = {"ks": ks, "mean_ks": float(np.mean(list(ks.values())))}
        srows.append([method] + [f"{getattr(st, f).mean() * scale[f]:.1f} ± "
                                 f"{getattr(st, f).std() * scale[f]:.1f} (KS {ks[f]:.3f})"
                                 for f in fields] + [f"{res['sampling'][method]['mean_ks']:.3f}"])
    best = min(res["sampling"], key=lambda m: res["sampling"][m]["mean_ks"])
    res["best_sampling"] = best
    pic = draws["gaussian"].vertices[:20].astype(np.float64)
    bodies_figure(pic, model.faces, ROOT / "docs" / "samples.png",
                  labels=[f"{np.ptp(v[:, 2]):.2f} m" for v in pic], per_row=10,
                  title="20 bodies sampled from the shipped shape model (Gaussian)")

    body = (f"Shipped model: {model.n_training} training meshes, {model.n_components} components, "
            f"hash `{model.model_hash}`.\n\n")
    body += table(["", *[f"{k} comp." for k in ev], "for 95 %", "for 99 %"], [
        ["shipped (with local changes)", *[f"{100 * v:.2f} %" for v in ev.values()],
         res["components_95"], res["components_99"]],
        ["phenotypes only", *[f"{100 * v:.2f} %" for v in res["plain_explained"].values()],
         res["plain_components_95"], res["plain_components_99"]],
    ])
    body += ("\n\nExplained variance (of the Procrustes-aligned training meshes).\n\n"
             "Held-out reconstruction error, mean vertex distance (mm), goal <= 2 mm at 50:\n\n")
    body += table(["model", "held-out meshes", *[f"{k} comp." for k in KS]], rows)
    body += (f"\n\nSampled bodies ({a.n_sample} each) against {a.n_sample} fresh anny bodies "
             "(with local changes); mean ± std, KS = Kolmogorov-Smirnov distance (0 = same "
             f"distribution). Best match: **{best}**.\n\n")
    body += table(["population", *[f"{f} ({unit[f]})" for f in fields], "mean KS"], srows)
    body += "\n\n![20 samples](samples.png)"
    write_section("pca", "PCA shape model", body, res)
    print(body)


if __name__ == "__main__":
    main()
