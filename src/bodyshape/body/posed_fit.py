"""Pose-aware coarse fit of the body model to a scan of any topology, in any standing pose.

What registration starts from (:mod:`bodyshape.shape.scan_register`): the 16-joint rig's pose
angles, the leading PCA shape coefficients and a similarity (rotation, translation, scale)
are fitted together with torch's Adam against a two-sided (scan -> model and model -> scan)
robust Chamfer distance between the posed coarse body (``BodyModel.coarse``, ~1,200 vertices)
and random points of the scan. Skinning is :func:`bodyshape.body.kinematics.lbs`.

Several starts are tried at once, as one batch: every candidate orientation of the scan
(up axis and facing, given by the caller) times several starting arm poses (hanging, A,
T, raised). A short screening run ranks them by the two-sided residual; the best few are
refined on more points; the lowest two-sided residual wins. Comparing orientations by how
well a body fits them is what makes T-poses and raised arms safe, where the largest extent
is not the height.

Then, by Levenberg-Marquardt (exact Jacobians by ``torch.func.jacfwd``; all 50 coefficients):
:meth:`PosedFitter.fit_surface`, the posed shape-prior fit to closest points of the scan,
from which the non-rigid registration starts; and :meth:`PosedFitter.refine`, the
vertex-to-vertex refit to that registration whose pose :meth:`PosedFitter.to_canonical`
undoes. Unposing magnifies angle errors along the limbs, so these fits are solved to
convergence, not by Adam's fixed-size steps.

Hand-written rather than a library's: the fit needs the rig's own skinning and angle
conventions, and Chamfer terms over ~1,500 points are one ``torch.cdist`` per step.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from bodyshape.body import kinematics as kin
from bodyshape.body.model import BodyModel
from bodyshape.body.pose import POSE_NAMES
from bodyshape.shape.coarse import to_coarse
from bodyshape.shape.register import vertex_normals

logger = logging.getLogger(__name__)

_P = {n: k for k, n in enumerate(POSE_NAMES)}
_ARMS = [_P["arm_abduction_l"], _P["arm_abduction_r"]]
_ELBOWS = [_P["elbow_bend_l"], _P["elbow_bend_r"]]


@dataclass(frozen=True)
class PosedFitConfig:
    """Schedule of the pose-aware coarse fit.

    Attributes:
        start_arm_deg: starting arm abductions (degrees from the downward vertical), one
            start each: hanging, A, T, raised.
        start_elbow_deg: starting elbow bend (the A-pose's forearms are bent ~41 deg forward;
            -30 is nearly straight, as scans usually are).
        screen_iterations: Adam steps of every start in the screening run.
        iterations: Adam steps of the refinement of the ``keep`` best starts.
        keep: starts refined after screening.
        screen_points, scan_points: random scan points in the screening and refinement.
        screen_stride: the screening uses every ``screen_stride``-th coarse vertex.
        match_every: Adam steps between nearest-pair searches.
        refine_iterations, refine_stride: Levenberg-Marquardt steps (at most) of
            :meth:`PosedFitter.refine`, and the template vertices it uses (every
            ``refine_stride``-th).
        refine_coeffs: PCA coefficients refitted by :meth:`PosedFitter.refine` (with known
            correspondences all of them are well determined).
        refine_shape_prior: weight (m^2) of the squared whitened coefficients against the
            mean squared vertex distance in :meth:`PosedFitter.refine` and
            :meth:`PosedFitter.fit_surface`.
        surface_iterations: Levenberg-Marquardt steps of :meth:`PosedFitter.fit_surface`
            (closest points re-matched at each).
        surface_point_to_point: weight of the point-to-point term next to the
            point-to-plane one (as ``RegistrationConfig.point_to_point``), annealed
            geometrically from the first value to the second over the steps (a larger one
            first lets limbs slide along their own surface towards their place).
        surface_landmark_weight: weight of each landmark against one matched vertex.
        surface_max_distance, min_normal_cos: matches farther (m), or whose normals agree
            less, are ignored.
        n_coeffs: leading PCA coefficients fitted (the rest stay 0).
        shape_prior: weight of the squared whitened coefficients.
        pose_prior: weight of the squared angles of legs, trunk and head (radians).
        scale_prior: weight of the squared log-scale.
        landmark_weight: weight of the landmark term (mean squared distance, m^2) when the
            scan has landmarks.
        robust_m: Charbonnier width (m) of the distance terms.
        lr: Adam step size of the angles (radians); coefficients x2, position x0.1.
    """

    start_arm_deg: tuple[float, ...] = (5.0, 43.0, 90.0, 135.0)
    start_elbow_deg: float = -30.0
    screen_iterations: int = 40
    iterations: int = 100
    keep: int = 2
    screen_points: int = 500
    scan_points: int = 1500
    screen_stride: int = 3
    match_every: int = 2
    refine_iterations: int = 10
    refine_stride: int = 4
    refine_coeffs: int = 50
    refine_shape_prior: float = 1e-8
    surface_iterations: int = 15
    surface_point_to_point: tuple[float, float] = (0.1, 0.01)
    surface_landmark_weight: float = 5.0
    surface_max_distance: float = 0.05
    min_normal_cos: float = 0.3
    n_coeffs: int = 20
    shape_prior: float = 1e-4
    pose_prior: float = 1e-3
    scale_prior: float = 1e-2
    landmark_weight: float = 10.0
    robust_m: float = 0.005
    lr: float = 0.03


@dataclass(frozen=True, eq=False)
class PosedFit:
    """A pose-aware coarse fit.

    Attributes:
        vertices: (V, 3) the fitted body posed, template topology, in the scan's frame (m).
        rest: (V, 3) the fitted body in the canonical A-pose (model frame, before scale), m.
        coeffs: (K,) its PCA coefficients (the leading ``n_coeffs`` fitted, the rest 0).
        angles: (P,) pose angles, radians, ``POSE_NAMES`` order.
        rotation: (3, 3) model frame -> scan frame (includes the chosen orientation).
        translation: (3,) meters.
        scale: the similarity's scale.
        residual: two-sided mean distance (m) of the coarse body and the scan points.
        candidate: index of the chosen orientation among those given.
        candidate_residuals: (C,) best two-sided residual (m) per orientation in screening.
    """

    vertices: np.ndarray = field(repr=False)
    rest: np.ndarray = field(repr=False)
    coeffs: np.ndarray = field(repr=False)
    angles: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    scale: float
    residual: float
    candidate: int
    candidate_residuals: tuple[float, ...]

    @property
    def summary(self) -> dict:
        """JSON-ready: the pose angles in degrees by name, and the scale."""
        return {"pose_deg": {n: round(float(np.degrees(a)), 1)
                             for n, a in zip(POSE_NAMES, self.angles)},
                "scale": round(self.scale, 4)}


def _rotvec_matrix(v: torch.Tensor) -> torch.Tensor:
    """(B, 3) rotation vectors -> (B, 3, 3), smooth at zero (axis from v + tiny offset)."""
    angle = torch.sqrt((v * v).sum(-1) + 1e-12)
    return kin.rotate_about(v / angle[:, None], angle)


class PosedFitter:
    """Fits a ``BodyModel`` (pose, shape, similarity) to scans; see the module doc.

    Picklable (the worker processes of ``register_folder`` receive one).
    """

    def __init__(self, body: BodyModel, config: PosedFitConfig = PosedFitConfig()):
        self.body = body
        self.config = config

    # ---- fixed tensors of the model rows (coarse vertices + landmark vertices) -----------

    def _model_rows(self, pick, weights: np.ndarray, n_first: int, n_coeffs: int | None = None,
                    dtype: torch.dtype = torch.float32) -> dict:
        """Tensors of model rows ``pick(v)`` ((..., V, 3) -> (..., R, 3)) with (R, J)
        skinning ``weights``; the first ``n_first`` rows meet the scan points. The leading
        ``n_coeffs`` (default ``config.n_coeffs``) PCA coefficients."""
        body, cfg = self.body, self.config
        k = min(cfg.n_coeffs if n_coeffs is None else n_coeffs, body.shape.components.shape[0])
        comps = body.shape.components[:k].reshape(k, -1, 3).astype(np.float64)  # (K, V, 3)
        mean = body.shape.mean.astype(np.float64)
        reg = body.rig.regressor
        t = lambda a: torch.tensor(a, dtype=dtype)
        return {"n_coarse": n_first, "mean": t(pick(mean)),
                "basis": t(pick(comps).transpose(1, 2, 0)), "jmean": t(reg @ mean),
                "jbasis": t(np.tensordot(reg, comps, axes=([1], [1])).transpose(0, 2, 1)),
                "weights": t(weights), "std": t(body.shape.std[:k]), "k": k}

    @functools.cached_property
    def _rows(self) -> dict:
        """Coarse vertices then landmark vertices."""
        body = self.body
        lm = np.asarray(body.template.landmark_indices)
        return self._model_rows(
            lambda v: np.concatenate([to_coarse(v, body.coarse), v[..., lm, :]], -2),
            np.concatenate([body.coarse_weights.numpy(), body.rig.weights[lm]]),
            body.coarse.n_vertices)

    @functools.cached_property
    def _refine_rows(self) -> dict:
        """Every ``refine_stride``-th template vertex then the landmark vertices,
        ``refine_coeffs`` coefficients, float64."""
        body = self.body
        sub = np.arange(0, body.template.vertices.shape[0], self.config.refine_stride)
        rows = np.concatenate([sub, np.asarray(body.template.landmark_indices)])
        return self._model_rows(lambda v: v[..., rows, :], body.rig.weights[rows], len(sub),
                                self.config.refine_coeffs, torch.float64)

    def _forward(self, m, z, angles, rotvec, trans, logs):
        """Posed model rows (B, R, 3) in the (candidate-rotated) scan frame."""
        c = z * m["std"]
        rest = m["mean"] + torch.einsum("rdk,bk->brd", m["basis"], c)
        joints = m["jmean"] + torch.einsum("jdk,bk->bjd", m["jbasis"], c)
        rot = kin.pose_rotations(angles, self.body.rest_arm_angle.float())
        posed = kin.lbs(rest, joints, rot, m["weights"], self.body.parents).vertices
        r = _rotvec_matrix(rotvec)
        return torch.exp(logs)[:, None, None] * posed @ r.transpose(1, 2) + trans[:, None]

    def _run(self, m, params, target, lm_rows, lm_pos, steps, stride=1):
        cfg = self.config
        z, angles, rotvec, trans, logs = params
        opt = torch.optim.Adam([
            {"params": [angles, rotvec], "lr": cfg.lr},
            {"params": [z], "lr": 2 * cfg.lr},
            {"params": [trans, logs], "lr": 0.1 * cfg.lr}])
        eps2 = cfg.robust_m ** 2
        free = [i for i in range(len(POSE_NAMES)) if i not in _ARMS + _ELBOWS]
        for step in range(steps):
            opt.zero_grad()
            x = self._forward(m, z, angles, rotvec, trans, logs)
            xc = x[:, :m["n_coarse"]:stride]
            if step % cfg.match_every == 0:
                # Nearest pairs only, searched every few steps: the gradient of a min is the
                # gradient at its pair, and the pairs change little from one step to the next.
                with torch.no_grad():
                    d2 = torch.cdist(xc, target)  # (B, Rc, N)
                    near_t, near_m = d2.argmin(2), d2.argmin(1)
            gt = torch.gather(target, 1, near_t[..., None].expand(-1, -1, 3))
            gm = torch.gather(xc, 1, near_m[..., None].expand(-1, -1, 3))
            ms = torch.sqrt(((xc - gt) ** 2).sum(-1) + eps2).mean(1)
            sm = torch.sqrt(((target - gm) ** 2).sum(-1) + eps2).mean(1)
            loss = (ms + sm + cfg.shape_prior * (z ** 2).sum(1)
                    + cfg.pose_prior * (angles[:, free] ** 2).sum(1)
                    + cfg.scale_prior * logs ** 2)
            if lm_rows is not None:
                loss = loss + cfg.landmark_weight * ((x[:, lm_rows] - lm_pos) ** 2).sum(-1).mean(1)
            loss.sum().backward()
            opt.step()
        with torch.no_grad():
            x = self._forward(m, z, angles, rotvec, trans, logs)
            d = torch.cdist(x[:, :m["n_coarse"]:stride], target)
            return (d.amin(2).mean(1) + d.amin(1).mean(1)) / 2

    def fit(self, points: np.ndarray, candidates: np.ndarray,
            landmarks: Mapping[str, np.ndarray] | None, rng: np.random.Generator) -> PosedFit:
        """Fit the body to a scan.

        Args:
            points: (N, 3) points on the scan surface (vertices and face samples), meters.
            candidates: (C, 3, 3) orientations to try: ``R @ p`` is the scan point ``p`` in a
                frame where the body would stand Z up facing -Y.
            landmarks: name -> (3,) scan landmarks in the frame of ``points`` (or None).
            rng: draws the scan point subsets.
        Returns:
            The best ``PosedFit`` over every orientation and starting pose.
        """
        cfg, body = self.config, self.body
        with torch.enable_grad():
            return self._fit(points, np.asarray(candidates, np.float64), landmarks or {}, rng,
                             cfg, body)

    def _fit(self, points, candidates, landmarks, rng, cfg, body):
        m = self._rows
        names = [n for n in body.template.landmark_names if n in landmarks]
        lm_rows = (torch.tensor([m["n_coarse"] + body.template.landmark_names.index(n)
                                 for n in names]) if len(names) >= 4 else None)
        lm_raw = np.stack([landmarks[n] for n in names]) if lm_rows is not None else None
        n_c, n_s = len(candidates), len(cfg.start_arm_deg)
        b = n_c * n_s
        pick = lambda n: points[rng.choice(len(points), min(n, len(points)), replace=False)]
        screen = torch.tensor(np.einsum("cij,nj->cni", candidates, pick(cfg.screen_points)),
                              dtype=torch.float32).repeat_interleave(n_s, 0)
        lm_pos = (None if lm_raw is None else torch.tensor(
            np.einsum("cij,nj->cni", candidates, lm_raw), dtype=torch.float32
        ).repeat_interleave(n_s, 0))
        angles = np.tile(body.rest_pose(1).angles, (b, 1))
        angles[:, _ARMS] = np.radians(np.tile(cfg.start_arm_deg, n_c))[:, None]
        angles[:, _ELBOWS] = np.radians(cfg.start_elbow_deg)
        z = torch.zeros(b, m["k"], requires_grad=True)
        ang = torch.tensor(angles, dtype=torch.float32, requires_grad=True)
        rotvec = torch.zeros(b, 3, requires_grad=True)
        logs = torch.zeros(b, requires_grad=True)
        with torch.no_grad():  # place each start's feet on the floor at the box centre
            x0 = self._forward(m, z, ang, rotvec, torch.zeros(b, 3), logs)
            lo_t, hi_t = screen.amin(1), screen.amax(1)
            lo_m, hi_m = x0.amin(1), x0.amax(1)
            shift = (lo_t + hi_t) / 2 - (lo_m + hi_m) / 2
            shift[:, 2] = lo_t[:, 2] - lo_m[:, 2]
        trans = shift.clone().requires_grad_(True)
        params = [z, ang, rotvec, trans, logs]
        res = self._run(m, params, screen, lm_rows, lm_pos, cfg.screen_iterations,
                        cfg.screen_stride)
        per_candidate = res.view(n_c, n_s).amin(1).tolist()
        best = torch.argsort(res)[:cfg.keep]
        cand = (best // n_s).numpy()
        target = torch.tensor(np.einsum("cij,nj->cni", candidates[cand], pick(cfg.scan_points)),
                              dtype=torch.float32)
        params = [p.detach()[best].clone().requires_grad_(True) for p in params]
        res = self._run(m, params, target, lm_rows, None if lm_pos is None else lm_pos[best],
                        cfg.iterations)
        i = int(torch.argmin(res))
        return self._full(params, i, candidates[cand[i]], int(cand[i]), float(res[i]),
                          tuple(per_candidate))

    def _full(self, params, i, cand_rot, cand, residual, per_candidate) -> PosedFit:
        """The winning start at full resolution, in the frame of the scan points."""
        z, ang, rotvec, trans, logs = (p.detach()[i:i + 1].double() for p in params)
        return self._make(z, ang, cand_rot.T @ _rotvec_matrix(rotvec)[0].numpy(),
                          cand_rot.T @ trans[0].numpy(), float(np.exp(logs[0])), residual,
                          cand, per_candidate)

    def _make(self, z, ang, rotation, translation, scale, residual, cand, per_candidate):
        body = self.body
        k = z.shape[1]
        coeffs = np.zeros(body.shape.components.shape[0])
        coeffs[:k] = body.shape.unwhiten(z[0].numpy())
        rest = body.shape.decode(coeffs[None])[0]
        posed = body.pose(rest, ang.numpy())
        return PosedFit(scale * posed @ rotation.T + translation, rest, coeffs, ang[0].numpy(),
                        rotation, translation, scale, residual, cand, per_candidate)

    def _least_squares(self, fit: PosedFit, steps: int, prepare, residuals) -> PosedFit:
        """Levenberg-Marquardt over the whitened coefficients (``refine_coeffs``), the
        angles and a similarity update of ``fit``. Each step first calls ``prepare(current)``
        with the current ``PosedFit`` (to fix weights and matches for the step), then
        minimizes the squares of ``residuals(x)``: (R,) weighted residuals of the posed rows
        ``x`` (every ``refine_stride``-th vertex, then the landmarks; (N + L, 3)) in
        ``fit``'s model frame (before its similarity). The shape prior is added as rows."""
        cfg, m = self.config, self._refine_rows
        k = m["k"]
        sizes = [k, len(POSE_NAMES), 3, 3, 1]
        z0 = self.body.shape.whiten(fit.coeffs[:k])
        p = torch.from_numpy(np.concatenate([z0, fit.angles, np.zeros(7)]))
        prior = float(np.sqrt(cfg.refine_shape_prior * m["n_coarse"]))
        damping = 1e-3

        def rows(q: torch.Tensor) -> torch.Tensor:
            z, ang, rotvec, trans, logs = torch.split(q[None], sizes, 1)
            x = self._forward(m, z, ang, rotvec, trans, logs[:, 0])[0]
            return torch.cat([residuals(x), prior * z[0]])

        def current(q: torch.Tensor) -> PosedFit:
            z, ang, rotvec, trans, logs = (t[None] for t in torch.split(q, sizes))
            return self._make(z, ang, fit.rotation @ _rotvec_matrix(rotvec)[0].numpy(),
                              fit.scale * fit.rotation @ trans[0].numpy() + fit.translation,
                              fit.scale * float(np.exp(logs[0, 0])), fit.residual,
                              fit.candidate, fit.candidate_residuals)

        for _ in range(steps):
            prepare(current(p))
            r = rows(p)
            jac = torch.func.jacfwd(rows)(p)
            jtj, g, before = jac.T @ jac, jac.T @ r, float(r @ r)
            while damping < 1e8:
                step = torch.linalg.solve(jtj + damping * torch.diag(jtj.diagonal() + 1e-12),
                                          -g)
                after = rows(p + step)
                if float(after @ after) < before:
                    p, damping = p + step, max(damping / 3, 1e-7)
                    break
                damping *= 4
            else:
                break
            if float(step.abs().max()) < 1e-7:
                break
        return current(p)

    def _to_model(self, fit: PosedFit, points: np.ndarray) -> np.ndarray:
        """Scan-frame points (N, 3) into ``fit``'s model frame (its similarity undone)."""
        return (np.asarray(points, np.float64) - fit.translation) @ fit.rotation / fit.scale

    def fit_surface(self, fit: PosedFit, query: Callable[[np.ndarray], tuple],
                    landmarks: Mapping[str, np.ndarray] | None = None) -> PosedFit:
        """The posed shape-prior fit: pose, ``refine_coeffs`` PCA coefficients and the
        similarity fitted to the scan surface from ``fit``, by closest points re-matched at
        every Levenberg-Marquardt step (point-to-plane plus a small point-to-point term,
        rejecting matches farther than ``surface_max_distance`` or with disagreeing
        normals) and the landmarks. Where the Chamfer fit's 20 coefficients leave the body
        ~5 mm off, this one starts the non-rigid stage from a body whose vertices already
        sit at the right anatomical places, as the A-pose path's prior fit does.

        Args:
            fit: the coarse fit to start from.
            query: closest points on the scan: (N, 3) -> (distances (N,), points (N, 3),
                unit normals (N, 3)), the scan's frame (``SurfaceSampler.query``).
            landmarks: name -> (3,) scan landmarks, scan frame (or None).
        """
        cfg, body = self.config, self.body
        sub = np.arange(0, body.template.vertices.shape[0], cfg.refine_stride)
        names = [n for n in body.template.landmark_names if n in (landmarks or {})]
        lm_rows = len(sub) + np.array([body.template.landmark_names.index(n) for n in names],
                                      dtype=np.int64)
        lm_pos = torch.from_numpy(self._to_model(fit, np.stack(
            [landmarks[n] for n in names]))) if names else None
        lm_w = np.sqrt(cfg.surface_landmark_weight)
        pp = np.sqrt(np.geomspace(*cfg.surface_point_to_point, max(cfg.surface_iterations, 1)))
        state = {"step": -1}

        def prepare(cur: PosedFit) -> None:  # closest points of the current body
            nrm = vertex_normals(cur.vertices, body.faces)[sub]
            dist, pts, pn = query(cur.vertices[sub])
            ok = (dist < cfg.surface_max_distance) & ((pn * nrm).sum(1) > cfg.min_normal_cos)
            state.update(step=state["step"] + 1,
                         w=torch.from_numpy(ok.astype(np.float64))[:, None],
                         c=torch.from_numpy(self._to_model(fit, pts)),
                         n=torch.from_numpy(pn @ fit.rotation))

        def residuals(x: torch.Tensor) -> torch.Tensor:
            d, w = x[:len(sub)] - state["c"], state["w"]
            out = [w[:, 0] * (d * state["n"]).sum(1), (pp[state["step"]] * w * d).reshape(-1)]
            if lm_pos is not None:
                out.append(lm_w * (x[lm_rows] - lm_pos).reshape(-1))
            return torch.cat(out)

        return self._least_squares(fit, cfg.surface_iterations, prepare, residuals)

    def refine(self, fit: PosedFit, vertices: np.ndarray) -> PosedFit:
        """Refit pose, shape and similarity to a template-topology body (V, 3) in the scan
        frame, vertex to vertex (a registration that started from ``fit``): with known
        correspondences the angles are far better determined than by the Chamfer fit.

        Levenberg-Marquardt (:meth:`_least_squares`) on every ``refine_stride``-th vertex
        with Charbonnier weights (iteratively reweighted). Adam, which the Chamfer fit uses,
        wanders by about its step size (~1 deg) around the optimum; unposing magnifies such
        angle errors along the limbs (1 deg of spine pitch moves the head by ~1 cm), and
        the canonical body inherits them."""
        cfg = self.config
        vertices = np.asarray(vertices, np.float64)
        sub = np.arange(0, len(vertices), cfg.refine_stride)
        target = torch.from_numpy(self._to_model(fit, vertices[sub]))
        state = {}

        def prepare(cur: PosedFit) -> None:  # Charbonnier weights of the current distances
            d2 = ((cur.vertices[sub] - vertices[sub]) ** 2).sum(1) / cfg.robust_m ** 2
            state["w"] = torch.from_numpy((1.0 + d2) ** -0.25)[:, None]

        def residuals(x: torch.Tensor) -> torch.Tensor:
            return (state["w"] * (x[:len(sub)] - target)).reshape(-1)

        return self._least_squares(fit, cfg.refine_iterations, prepare, residuals)

    def to_canonical(self, fit: PosedFit, vertices: np.ndarray) -> np.ndarray:
        """Unpose (V, 3) template-topology vertices in the scan frame (a registration that
        started from ``fit``) to the canonical A-pose: the pose is refined vertex to vertex
        (:meth:`refine`), then undone by inverse skinning with the refined body's rest
        joints. Meters, Z up, facing -Y, in the shape model's frame."""
        body = self.body
        fit = self.refine(fit, vertices)
        y = self._to_model(fit, vertices)
        rest_t = torch.from_numpy(fit.rest)[None]
        joints = kin.regress_joints(rest_t, body.regressor)
        rot = kin.pose_rotations(torch.from_numpy(fit.angles)[None], body.rest_arm_angle)
        out = kin.inverse_lbs(torch.from_numpy(y)[None], joints, rot, body.weights,
                              body.parents)
        return fit.scale * out[0].numpy()
