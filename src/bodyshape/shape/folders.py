"""Folders of body meshes: writing anny bodies, registering a folder, reading a merged set.

Folder format (what ``bodyshape bodies`` and ``bodyshape register`` write):

- ``<name>.ply``: one body per file, meters. Body folders (``bodyshape bodies``): Z up,
  facing -Y, canonical A-pose. Registered folders: the template topology in the scan's own
  pose and axes, plus ``<name>.canonical.ply``, the same body unposed to the canonical
  A-pose (what ``read_template_meshes`` reads).
- ``bodies.json``: ``{"topology": str, "source": str, "bodies": {<name>: record}}`` where a
  record holds at least ``sex`` ("male"/"female"/null) and ``stature_m``; anny bodies add their
  phenotype and local-change parameters. Optional for imported folders.
- ``<name>.registration.json`` (registered folders): how the mesh was registered and its
  two-sided quality, with the ``failed`` flag (``shape/scan_register.py``); written last.

Every file is written atomically, and batch commands skip outputs that already exist, so a
killed run picks up where it stopped.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bodyshape.fileio import write_json
from bodyshape.shape.mesh_clean import MeshInputError
from bodyshape.shape.meshio import list_mesh_files, load_body_mesh, save_body_mesh
from bodyshape.shape.template import Template, load_template

logger = logging.getLogger(__name__)

BODIES_JSON = "bodies.json"
REGISTRATION_JSON = ".registration.json"
CANONICAL_PLY = ".canonical.ply"


def read_bodies_json(folder: str | os.PathLike) -> dict:
    """``folder/bodies.json`` as a dict, or an empty description if there is none."""
    path = Path(folder) / BODIES_JSON
    if not path.exists():
        return {"topology": None, "source": "external", "bodies": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a valid bodies.json ({e})") from None
    data.setdefault("bodies", {})
    return data


def write_anny_bodies(out: str | os.PathLike, n: int, topology: str, seed: int,
                      ages: tuple[float, float] = (20.0, 70.0),
                      sexes: tuple[str, ...] = ("male", "female"),
                      local_scale: float = 1.0, batch_size: int = 32,
                      progress: bool = True) -> Path:
    """Write ``n`` anny bodies in ``topology`` as PLY files plus ``bodies.json``.

    The same seed gives the same bodies. Files that already exist are kept (resume).
    Returns the path of ``bodies.json``.
    """
    from bodyshape.shape import anny_bodies as ab

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    local = ab.LocalChangeSpec(scale=local_scale) if local_scale > 0 else None
    params = ab.sample_body_params(n, np.random.default_rng(seed), ages=ages, sexes=sexes,
                                   local=local)
    names = [f"body_{i:05d}" for i in range(n)]
    statures = np.zeros(n)
    bar = tqdm(total=n, desc=f"bodies ({topology})", unit="body", disable=not progress)
    # Meshes are regenerated even when their file exists (anny is fast: ~10 ms a body), so
    # that a resumed run still records every stature; only missing files are written.
    for s in range(0, n, batch_size):
        idx = np.arange(s, min(n, s + batch_size))
        sub = ab.BodyParams(params.phenotypes[idx], params.local_changes[idx],
                            params.local_change_labels, tuple(params.sex[i] for i in idx),
                            params.morphological_age[idx])
        meshes = ab.body_meshes(sub, topology)
        statures[idx] = meshes.stature
        for j, i in enumerate(idx):
            if not (out / f"{names[i]}.ply").exists():
                save_body_mesh(out / f"{names[i]}.ply", meshes.vertices[j], meshes.faces)
        bar.update(len(idx))
    bar.close()
    records = {}
    for i, name in enumerate(names):
        rec = params.record(i)
        rec["stature_m"] = round(float(statures[i]), 5)
        records[name] = rec
    doc = {
        "source": "anny",
        "topology": topology,
        "seed": seed,
        "ages": list(ages),
        "sexes": list(sexes),
        "local_scale": local_scale,
        "bodies": records,
    }
    write_json(out / BODIES_JSON, doc)
    return out / BODIES_JSON


@dataclass(frozen=True)
class RegisterOptions:
    """How ``register_folder`` reads and registers meshes.

    ``landmarks``: "auto" uses a mesh's landmark file, else the exact anny transfer when the
    folder's bodies.json names an anny topology, else estimates them; "estimate" always
    estimates (to measure the automatic path). ``fitter``: a pose-aware coarse fitter
    (``bodyshape.body.posed_fit.PosedFitter``, what ``bodyshape register`` passes) for scans
    in any standing pose, or None for the A-pose path (landmark similarity and the A-pose
    shape prior ``shape_model``; meshes must be in an A-pose). ``seed`` seeds the fitter's
    point subsets.
    """

    units: str = "auto"
    up: str = "auto"
    landmarks: str = "auto"
    shape_model: str | None = None
    fitter: object | None = None
    seed: int = 0

    def __post_init__(self):
        from bodyshape.shape.mesh_frame import parse_up

        parse_up(self.up)  # one-line ValueError for anything but auto or an axis


@dataclass(frozen=True)
class FolderReport:
    """Outcome of a batch over a folder. ``failed`` maps file name -> one-line reason (not
    registered); ``flagged`` maps file name -> reason for registrations written but marked
    ``failed`` by their quality figures (``scan_register.registration_quality``)."""

    done: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: dict
    flagged: dict = field(default_factory=dict)


_WORKER: dict = {}


def _worker_init(options: RegisterOptions, topology: str | None, single_thread: bool) -> None:
    from bodyshape.shape.pca import ShapeModel

    if single_thread:
        # Several worker processes on few cores: BLAS threads inside each only oversubscribe.
        from threadpoolctl import threadpool_limits

        _WORKER["threads"] = threadpool_limits(1)

    _WORKER["template"] = load_template()
    _WORKER["prior"] = (ShapeModel.load(options.shape_model)
                        if options.shape_model and options.fitter is None else None)
    _WORKER["options"] = options
    _WORKER["topology"] = topology


def _register_aposed(mesh, landmarks: dict, info: dict):
    """The A-pose path: (vertices in the loader frame, canonical vertices)."""
    from bodyshape.shape.register import (
        SurfaceSampler,
        register,
        register_without_landmarks,
    )

    template: Template = _WORKER["template"]
    sampler = SurfaceSampler.from_mesh(mesh.vertices, mesh.faces)
    if len(landmarks) < 4:
        res, est = register_without_landmarks(mesh.vertices, mesh.faces, template,
                                              _WORKER["prior"], sampler=sampler)
        info["landmarks"] = "estimated"
        info["facing_flipped"] = est.facing_flipped
    else:
        res = register(mesh.vertices, mesh.faces, landmarks, template, _WORKER["prior"],
                       sampler=sampler)
    if not np.isfinite(res.vertices).all():
        raise MeshInputError(f"{mesh.name}: registration diverged (non-finite vertices)")
    canonical = res.vertices
    if res.similarity.rotation[1, 1] < 0:
        # The body faced +Y: turn it about the vertical axis to the canonical -Y facing.
        centre = canonical.mean(axis=0) * [1, 1, 0]
        canonical = (canonical - centre) * [-1, -1, 1] + centre
        info["turned_to_face_minus_y"] = True
    info.update(landmark_rms_mm=round(res.landmark_rms * 1e3, 3), seconds=round(res.seconds, 3))
    return res.vertices, canonical, sampler


def _register_posed(mesh, landmarks: dict, info: dict):
    """The pose-aware path: (vertices in the loader frame, canonical vertices)."""
    from bodyshape.shape.mesh_frame import axis_name, candidate_rotations, parse_up
    from bodyshape.shape.scan_register import register_scan

    opts: RegisterOptions = _WORKER["options"]
    up = None if opts.up == "auto" else (2, 1)  # a given up axis is +Z after loading
    cands, labels = candidate_rotations(mesh.vertices, up)
    if up is not None:  # name the axis the user gave, not the +Z it became on loading
        given = axis_name(*parse_up(opts.up))
        labels = tuple(lab.replace("up +z", f"up {given} (given)") for lab in labels)
    res = register_scan(mesh.vertices, mesh.faces, _WORKER["template"], opts.fitter, cands,
                        np.random.default_rng(opts.seed), landmarks=landmarks)
    if not (np.isfinite(res.vertices).all() and np.isfinite(res.canonical).all()):
        raise MeshInputError(f"{mesh.name}: registration diverged (non-finite vertices)")
    c = res.coarse
    info["landmarks"] = info.get("landmarks") if res.landmarks == "given" else "estimated"
    info["n_landmarks"] = res.n_landmarks
    info["orientation"] = labels[c.candidate] + (" (auto: lowest coarse residual)"
                                                 if up is None or len(labels) > 1 else "")
    info["coarse_residual_mm"] = round(c.residual * 1e3, 3)
    info["orientation_residuals_mm"] = {lab: round(r * 1e3, 2)
                                        for lab, r in zip(labels, c.candidate_residuals)}
    info["coarse_fit"] = c.summary
    info["seconds"] = round(res.seconds, 3)
    return res.vertices, res.canonical, res.quality


def _register_one(job: tuple[str, str]) -> tuple[str, str | None, str | None]:
    """Register one file; returns (name, error message or None, quality flag or None)."""
    from bodyshape.shape.anny_landmarks import transferred_landmarks
    from bodyshape.shape.scan_register import registration_quality

    src, out_dir = Path(job[0]), Path(job[1])
    template: Template = _WORKER["template"]
    opts: RegisterOptions = _WORKER["options"]
    posed = opts.fitter is not None
    try:
        up = "file" if posed and opts.up == "auto" else opts.up
        mesh = load_body_mesh(src, units=opts.units, up=up,
                              landmarks_path="auto" if opts.landmarks == "auto" else None,
                              known_landmarks=template.landmark_names)
        info = {"source": src.name, "notes": list(mesh.notes),
                "path": "pose-aware" if posed else "A-pose"}
        landmarks = dict(mesh.landmarks)
        if landmarks:
            info["landmarks"] = "file"
        elif opts.landmarks == "auto" and _WORKER["topology"] is not None:
            landmarks = transferred_landmarks(_WORKER["topology"], mesh.vertices, mesh.faces,
                                              template)
            info["landmarks"] = f"anny transfer ({_WORKER['topology']})"
        if posed:
            vertices, canonical, quality = _register_posed(mesh, landmarks, info)
        else:
            vertices, canonical, sampler = _register_aposed(mesh, landmarks, info)
            quality = registration_quality(vertices, template.faces, sampler)
        info.update(quality.as_dict())
        stem = src.stem
        # The scan's own pose and axes (meters): the loader only rotated and scaled.
        save_body_mesh(out_dir / f"{stem}.ply", vertices @ mesh.rotation, template.faces)
        save_body_mesh(out_dir / f"{stem}.canonical.ply", canonical, template.faces)
        write_json(out_dir / f"{stem}.registration.json", info)
        flag = None
        if quality.failed:
            flag = (f"{src.name}: registration failed its quality check (p95 template->scan "
                    f"{quality.template_to_scan_p95_mm:.1f} mm, scan->template "
                    f"{quality.scan_to_template_p95_mm:.1f} mm)")
        return src.name, None, flag
    except (MeshInputError, ValueError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        return src.name, msg if msg.startswith(src.name) else f"{src.name}: {msg}", None


def _marked_failed(path: Path) -> bool:
    """Whether a ``registration.json`` says its registration failed the quality check."""
    try:
        return bool(json.loads(path.read_text()).get("failed"))
    except (OSError, ValueError, AttributeError):
        return False


def _collect(results, bar):
    """Pass (name, error) results through, advancing the progress bar."""
    for item in results:
        bar.update(1)
        yield item


def register_folder(in_dir: str | os.PathLike, out_dir: str | os.PathLike,
                    options: RegisterOptions = RegisterOptions(), workers: int = 1,
                    progress: bool = True) -> FolderReport:
    """Register every mesh in ``in_dir`` onto the template, writing ``out_dir/<name>.ply``.

    Meshes whose output already exists are skipped (resume). A bad mesh is reported and
    skipped; the others still run. ``out_dir/bodies.json`` carries the sources' records over.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise ValueError(f"{in_dir}: not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = read_bodies_json(in_dir)
    topology = meta.get("topology") if meta.get("source") == "anny" else None
    files = list_mesh_files(in_dir)
    todo = [f for f in files if not (out_dir / f"{f.stem}{REGISTRATION_JSON}").exists()]
    skipped = tuple(f.name for f in files if f not in todo)
    done, failed = [], {}
    bar = tqdm(total=len(files), initial=len(skipped), desc="register", unit="mesh",
               disable=not progress)
    jobs = [(str(f), str(out_dir)) for f in todo]
    if workers > 1 and len(jobs) > 1:
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_worker_init, initargs=(options, topology, True)) as pool:
            results = list(_collect(pool.imap(_register_one, jobs, chunksize=1), bar))
    else:
        _worker_init(options, topology, True)
        try:
            results = list(_collect(map(_register_one, jobs), bar))
        finally:
            _WORKER.pop("threads").restore_original_limits()
    bar.close()
    # A registration written by an earlier run and marked failed stays flagged on a rerun,
    # so the exit status does not depend on whether the outputs were already there.
    flagged = {name: f"{name}: registration failed its quality check (earlier run; delete "
               f"its outputs to redo it)" for name in skipped
               if _marked_failed(out_dir / f"{Path(name).stem}{REGISTRATION_JSON}")}
    for name, err, flag in results:
        if err:
            failed[name] = err
        else:
            done.append(name)
        if flag:
            flagged[name] = flag
    for msg in (*failed.values(), *flagged.values()):
        logger.error("%s", msg)
    kept = {f.stem for f in files if (out_dir / f"{f.stem}{REGISTRATION_JSON}").exists()}
    write_json(out_dir / BODIES_JSON, {
        "source": f"registered from {in_dir.name}",
        "topology": "template",
        "source_topology": meta.get("topology"),
        "bodies": {k: v for k, v in meta["bodies"].items() if k in kept},
    })
    return FolderReport(tuple(done), skipped, failed, flagged)


@dataclass(frozen=True)
class MeshSet:
    """Template-topology meshes read from folders.

    Attributes:
        vertices: (N, V, 3) float32 meters.
        names: "folder/name" per mesh.
        sex: per mesh "male"/"female"/None.
        sources: folder name -> {"count", "topology"} summary.
    """

    vertices: np.ndarray
    names: tuple[str, ...]
    sex: tuple
    sources: dict


def _folder_meshes(folder: Path, failed: str) -> list[tuple[str, Path]]:
    """(name, file) of the meshes ``read_template_meshes`` takes from one folder.

    A registered folder (``*.registration.json`` files) gives each ``NAME.canonical.ply``
    (``NAME.ply`` of folders registered before canonical outputs existed); registrations
    flagged ``failed`` are refused, skipped or included as ``failed`` says.
    """
    reports = sorted(folder.glob(f"*{REGISTRATION_JSON}"))
    if not reports:
        return [(f.stem, f) for f in list_mesh_files(folder)
                if not f.name.endswith(CANONICAL_PLY)]
    out, flagged = [], []
    for rep in reports:
        name = rep.name[: -len(REGISTRATION_JSON)]
        try:
            is_failed = bool(json.loads(rep.read_text()).get("failed", False))
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{rep}: not a valid registration report ({e})") from None
        if is_failed:
            flagged.append(name)
            if failed != "include":
                continue
        canonical = folder / f"{name}{CANONICAL_PLY}"
        out.append((name, canonical if canonical.exists() else folder / f"{name}.ply"))
    if flagged and failed == "refuse":
        shown = ", ".join(flagged[:5]) + (", ..." if len(flagged) > 5 else "")
        raise ValueError(f"{folder}: {len(flagged)} registration(s) flagged failed ({shown}); "
                         "remove them or pass --force")
    if flagged:
        logger.warning("%s: %s %d registration(s) flagged failed", folder,
                       "including" if failed == "include" else "skipping", len(flagged))
    return out


def read_template_meshes(folders, template: Template | None = None,
                         progress: bool = True, failed: str = "refuse") -> MeshSet:
    """Read the template-topology meshes in ``folders``.

    Args:
        folders: folders of PLY files in the template topology: registered folders
            (``bodyshape register``; their canonical ``NAME.canonical.ply`` are read) or
            folders of canonical bodies (every mesh file is read).
        template: the template (default: the shipped one).
        progress: show a progress bar.
        failed: registrations flagged ``failed``: "refuse" (ValueError naming them),
            "skip" (with a warning) or "include".
    """
    import trimesh

    if failed not in ("refuse", "skip", "include"):
        raise ValueError(f"failed must be 'refuse', 'skip' or 'include', got {failed!r}")
    template = template or load_template()
    verts, names, sexes, sources = [], [], [], {}
    for folder in map(Path, folders):
        meta = read_bodies_json(folder)
        files = _folder_meshes(folder, failed)
        if not files:
            raise ValueError(f"{folder}: no OBJ/PLY/OFF meshes")
        for name, f in tqdm(files, desc=f"read {folder.name}", unit="mesh",
                            disable=not progress):
            m = trimesh.load(f, process=False, force="mesh")
            if len(m.vertices) != len(template.vertices) or not np.array_equal(
                    np.asarray(m.faces), template.faces):
                raise ValueError(f"{f}: not in the template topology (register it first)")
            verts.append(np.asarray(m.vertices, dtype=np.float32))
            names.append(f"{folder.name}/{name}")
            sexes.append(meta["bodies"].get(name, {}).get("sex"))
        sources[folder.name] = {"count": len(files),
                                "topology": meta.get("source_topology") or meta.get("topology")}
    return MeshSet(np.stack(verts), tuple(names), tuple(sexes), sources)
