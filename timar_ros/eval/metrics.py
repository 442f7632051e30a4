"""The DualTalk metrics, as the TIMAR reference computes them (``util/metrics.py``,
``calc_metric.py``), re-implemented with numpy/scipy/scikit-learn.

Per file, prediction [T, 56] (exp | jaw | rotation), ground truth and the *partner's* ground
truth (the anchor) are cut to their common length and split into the groups EXP (50-d), JAW
(3-d) and POSE (head rotation, 3-d). For each group:

- ``fid``: Frechet distance between Gaussians fitted (mean, ``np.cov`` over frames) to pred and
  GT: ``|mu1-mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2))``; retried with 1e-6*I on both covariances
  when the square root is not finite; an imaginary diagonal above 1e-3 is an error.
- ``p_fid``: the same on ``[anchor | GT]`` vs ``[anchor | pred]`` (features concatenated).
- ``mse``: mean squared error over frames and dims.
- ``sid``: KMeans (k = 40 EXP, 10 JAW/POSE, ``random_state=0``, ``n_init="auto"``) fitted on GT,
  entropy ``-sum p log2(p + 1e-6)`` of the histogram of the *prediction's* labels.
  ``reverse_sid``: fitted on the prediction, histogram of GT labels (what DualTalk's own script
  computes under the name SID).
- ``rpcc``: ``|pcc(GT, anchor) - pcc(pred, anchor)|`` with Pearson over flattened arrays.
- ``sts``: ``sqrt(sum_t,d ((dpred - dGT)^2) / 0.1)`` (the reference's timestep 0.1).
- ``diversity_pre``/``diversity_gt``: mean L2 distance of 100 random frame pairs. **Seeded here**
  (a generator from ``seed`` and a CRC32 of the file name); the reference draws from the global
  unseeded ``np.random`` inside joblib workers, so its values are not reproducible.
- ``variance_pre``/``variance_gt``: mean per-dim variance.

Each metric is averaged over the files where it is finite. Two things take a file out, and
every report says how many and which: a prediction with NaN/Inf is skipped whole (``skipped``,
as the reference does), and a metric that is undefined for a file (rPCC when the prediction, the
ground truth or the anchor is constant in a group) is left out of that metric's average only
(``excluded``: metric -> files). :func:`format_for_pub` applies the published scaling
(FD/P-FD x1/x1e3/x1e2, MSE x10/x1e3/x1e2, rPCC x1e2/x10/x10; SID raw), rounded to 2 decimals.

Deviations, for files too short for the reference (which would crash): when a group has fewer
distinct frames than k, k is reduced to that number; when a file has fewer than 100 frames,
diversity uses as many pairs as frames. Both are reported in the per-file ``notes``.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from timar_ros.motion import GROUPS

__all__ = [
    "GROUP_NAMES",
    "SID_K",
    "METRIC_KEYS",
    "frechet_distance",
    "gaussian_stats",
    "fd",
    "sid",
    "rpcc",
    "sts",
    "diversity",
    "variance",
    "file_metrics",
    "average_metrics",
    "format_for_pub",
    "evaluate_dirs",
]

GROUP_NAMES = tuple(GROUPS)  # exp, jaw, pose
SID_K = {"exp": 40, "jaw": 10, "pose": 10}
DIVERSITY_PAIRS = 100
STS_TIMESTEP = 0.1
_BASE = [
    "fid",
    "p_fid",
    "mse",
    "sid",
    "reverse_sid",
    "sts",
    "diversity_pre",
    "diversity_gt",
    "variance_pre",
    "variance_gt",
    "rpcc",
]
METRIC_KEYS = [f"{b}_{g}" for b in _BASE for g in GROUP_NAMES]
PUB_SCALE = OrderedDict(
    [
        ("fid_exp", 1),
        ("fid_jaw", 1e3),
        ("fid_pose", 1e2),
        ("p_fid_exp", 1),
        ("p_fid_jaw", 1e3),
        ("p_fid_pose", 1e2),
        ("mse_exp", 10),
        ("mse_jaw", 1e3),
        ("mse_pose", 1e2),
        ("reverse_sid_exp", 1),
        ("reverse_sid_jaw", 1),
        ("reverse_sid_pose", 1),
        ("sid_exp", 1),
        ("sid_jaw", 1),
        ("sid_pose", 1),
        ("rpcc_exp", 1e2),
        ("rpcc_jaw", 10),
        ("rpcc_pose", 10),
    ]
)


def gaussian_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance over frames (rows), as ``np.cov(rowvar=False)``."""
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """``|mu1-mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2))``."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError("Frechet distance of Gaussians of different dimensions")
    diff = mu1 - mu2
    import warnings

    with warnings.catch_warnings():
        # A constant group (a still jaw) has a singular covariance: expected, and handled below.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            off = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + off).dot(sigma2 + off))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fd(pred: np.ndarray, gt: np.ndarray) -> float:
    """FD between Gaussians fitted to two [T, D] arrays."""
    m1, c1 = gaussian_stats(pred)
    m2, c2 = gaussian_stats(gt)
    return frechet_distance(m1, c1, m2, c2)


def sid(fit_on: np.ndarray, labelled: np.ndarray, k: int, notes: list | None = None) -> float:
    """Entropy (bits) of the histogram of ``labelled``'s KMeans labels, KMeans fitted on ``fit_on``.

    ``sid`` = ``sid(gt, pred, k)``; ``reverse_sid`` = ``sid(pred, gt, k)``.
    """
    from sklearn.cluster import KMeans

    fit_on = np.asarray(fit_on, dtype=np.float64)
    labelled = np.asarray(labelled, dtype=np.float64)
    n_distinct = len(np.unique(fit_on, axis=0))
    k_eff = int(min(k, n_distinct))
    if k_eff < k and notes is not None:
        notes.append(f"k reduced {k}->{k_eff} ({n_distinct} distinct frames)")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning on degenerate (e.g. constant) data
        km = KMeans(n_clusters=k_eff, random_state=0, n_init="auto").fit(fit_on)
        labels = km.predict(labelled)
    p = np.bincount(labels, minlength=k_eff).astype(np.float64)
    p /= p.sum()
    return float(-np.sum(p * np.log2(p + 1e-6)))


def rpcc(gt: np.ndarray, pred: np.ndarray, anchor: np.ndarray) -> float:
    """``|pcc(gt, anchor) - pcc(pred, anchor)|`` over flattened arrays (NaN if one is constant)."""
    a = np.asarray(anchor, np.float64).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        c_gt = np.corrcoef(np.asarray(gt, np.float64).ravel(), a)[0, 1]
        c_pr = np.corrcoef(np.asarray(pred, np.float64).ravel(), a)[0, 1]
    return float(abs(c_gt - c_pr))


def sts(pred: np.ndarray, gt: np.ndarray, timestep: float = STS_TIMESTEP) -> float:
    """``sqrt(sum over frames and dims of (diff(pred) - diff(gt))^2 / timestep)``."""
    d = np.diff(np.asarray(pred, np.float64), axis=0) - np.diff(np.asarray(gt, np.float64), axis=0)
    return float(np.sqrt(np.sum(d * d) / timestep))


def diversity(
    x: np.ndarray, rng: np.random.Generator, pairs: int = DIVERSITY_PAIRS, notes: list | None = None
) -> float:
    """Mean L2 distance between ``pairs`` random frame pairs (two draws without replacement)."""
    x = np.asarray(x, np.float64)
    n = len(x)
    if n < pairs:
        if notes is not None:
            notes.append(f"diversity pairs {pairs}->{n}")
        pairs = n
    i = rng.choice(n, pairs, replace=False)
    j = rng.choice(n, pairs, replace=False)
    return float(np.linalg.norm(x[i] - x[j], axis=1).mean())


def variance(x: np.ndarray) -> float:
    """Mean over dims of the per-dim variance over frames."""
    return float(np.mean(np.var(np.asarray(x, np.float64), axis=0)))


def _file_rng(name: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])


def file_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    anchor: np.ndarray,
    name: str = "",
    seed: int = 0,
    notes: list | None = None,
) -> dict[str, float]:
    """All metrics of one file. ``pred``, ``gt``, ``anchor``: [T, 56] model order (exp|jaw|rot).

    The three are cut to their common length first.
    """
    arrays = [np.asarray(a, np.float64) for a in (pred, gt, anchor)]
    for a, what in zip(arrays, ("pred", "gt", "anchor")):
        if a.ndim != 2 or a.shape[1] != 56:
            raise ValueError(f"{name}: {what} must be [T, 56], got {a.shape}")
    T = min(len(a) for a in arrays)
    if T < 2:
        raise ValueError(f"{name}: need at least 2 common frames, got {T}")
    pred, gt, anchor = (a[:T] for a in arrays)
    rng = _file_rng(name, seed)
    notes = notes if notes is not None else []
    out: dict[str, float] = {}
    groups = GROUPS
    for g, sl in groups.items():
        p, y, a = pred[:, sl], gt[:, sl], anchor[:, sl]
        out[f"fid_{g}"] = fd(p, y)
        out[f"p_fid_{g}"] = fd(np.concatenate([a, y], 1), np.concatenate([a, p], 1))
        out[f"mse_{g}"] = float(np.mean((p - y) ** 2))
        out[f"sid_{g}"] = sid(y, p, SID_K[g], notes)
        out[f"reverse_sid_{g}"] = sid(p, y, SID_K[g], notes)
        out[f"sts_{g}"] = sts(p, y)
        out[f"rpcc_{g}"] = rpcc(y, p, a)
    # Diversity draws in the reference's order: pred exp/jaw/pose, then GT exp/jaw/pose.
    for g, sl in groups.items():
        out[f"diversity_pre_{g}"] = diversity(pred[:, sl], rng, notes=notes)
    for g, sl in groups.items():
        out[f"diversity_gt_{g}"] = diversity(gt[:, sl], rng, notes=notes)
    for g, sl in groups.items():
        out[f"variance_pre_{g}"] = variance(pred[:, sl])
        out[f"variance_gt_{g}"] = variance(gt[:, sl])
    for k in METRIC_KEYS:
        if not np.isfinite(out[k]):
            notes.append(
                f"{k} undefined (a constant prediction, ground truth or anchor): left "
                "out of its average"
            )
    return {k: out[k] for k in METRIC_KEYS}


def average_metrics(
    per_file: dict[str, dict[str, float]],
) -> tuple[dict[str, float], dict[str, list[str]]]:
    """Mean of each metric over the files where it is finite.

    Args:
        per_file: file name -> its metrics.
    Returns:
        (averages, excluded): ``excluded`` maps each metric that was not finite for some files to
        those files' names (a metric finite nowhere averages to NaN).
    """
    if not per_file:
        return {}, {}
    keys = next(iter(per_file.values()))
    avg, excluded = {}, {}
    for k in keys:
        values = {n: d[k] for n, d in per_file.items()}
        bad = sorted(n for n, v in values.items() if not np.isfinite(v))
        good = [v for v in values.values() if np.isfinite(v)]
        avg[k] = float(np.mean(good)) if good else float("nan")
        if bad:
            excluded[k] = bad
    return avg, excluded


def format_for_pub(avg: dict[str, float]) -> OrderedDict[str, float]:
    """The published scaling, rounded to 2 decimals, in the reference's key order."""
    return OrderedDict((k, round(float(avg[k]) * s, 2)) for k, s in PUB_SCALE.items() if k in avg)


def _one_file(pred_path: Path, gt_dir: Path, seed: int) -> tuple[str, dict | None, list, str]:
    from timar_ros.data.dualtalk_files import load_motion, partner_stem

    name = pred_path.stem
    notes: list = []
    try:
        pred = np.load(pred_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"{pred_path}: cannot read the prediction ({exc}); a prediction is a .npy "
            "of motion [T, 56] (exp | jaw | rotation)"
        ) from None
    if pred.ndim != 2 or pred.shape[1:] != (56,) or not np.issubdtype(pred.dtype, np.number):
        raise ValueError(
            f"{pred_path}: a prediction is motion [T, 56], got {pred.dtype} {pred.shape}"
        )
    if not np.all(np.isfinite(pred)):
        return name, None, notes, "non-finite prediction"
    gt = load_motion(gt_dir / f"{name}.npz")
    anchor = load_motion(gt_dir / f"{partner_stem(name)}.npz")
    return name, file_metrics(pred, gt, anchor, name, seed, notes), notes, ""


def _one_file_1t(pred_path: Path, gt_dir: Path, seed: int):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _one_file(pred_path, gt_dir, seed)


def evaluate_dirs(
    pred_dir: str | Path,
    gt_dir: str | Path,
    seed: int = 0,
    jobs: int = 1,
    expect: int | None = None,
    names: list[str] | None = None,
) -> dict:
    """Metrics of every ``<name>.npy`` in ``pred_dir`` against ``gt_dir`` (DualTalk layout).

    Args:
        expect: fail unless exactly this many predictions are valid (finite).
        names: the predictions there must be, exactly (e.g. every test file): a missing or an
            unexpected one is an error, not a smaller average.
    Returns a dict with ``metrics`` (raw averages over the files where each is finite),
    ``pub`` (scaled), ``files`` (valid predictions), ``predictions`` (all), ``skipped``
    (name -> why: NaN/Inf predictions, left out whole, as the reference does), ``excluded``
    (metric -> files where it is undefined), ``excluded_files`` (files left out of at least one
    average), ``notes``, ``per_file``.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"prediction directory not found: {pred_dir}")
    if not gt_dir.is_dir():
        raise FileNotFoundError(f"ground-truth directory not found: {gt_dir}")
    files = sorted(pred_dir.glob("*.npy"))
    if names is not None:
        have, want = {f.stem for f in files}, set(names)
        for problem, which in (
            ("no prediction for", want - have),
            ("unexpected predictions", have - want),
        ):
            if which:
                shown = ", ".join(sorted(which)[:5]) + (" ..." if len(which) > 5 else "")
                raise ValueError(
                    f"{pred_dir}: {problem} {len(which)} of {len(want)} expected files: {shown}"
                )
    if not files:
        raise FileNotFoundError(f"no .npy predictions in {pred_dir}")
    # Single-threaded BLAS/OpenMP per process, as the reference's driver sets: on these small
    # matrices thread start-up costs more than it saves (about 5x slower on 2 cores).
    from threadpoolctl import threadpool_limits

    if jobs == 1:
        with threadpool_limits(1):
            results = [_one_file(f, gt_dir, seed) for f in files]
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=jobs)(delayed(_one_file_1t)(f, gt_dir, seed) for f in files)
    per_file = {n: m for n, m, _, why in results if m is not None}
    skipped = {n: why for n, m, _, why in results if m is None}
    notes = {n: nt for n, m, nt, _ in results if nt}
    if expect is not None and len(per_file) != expect:
        raise ValueError(f"expected {expect} valid predictions, got {len(per_file)}")
    avg, excluded = average_metrics(per_file)
    return {
        "metrics": avg,
        "pub": dict(format_for_pub(avg)) if avg else {},
        "files": len(per_file),
        "predictions": len(files),
        "skipped": skipped,
        "excluded": excluded,
        "excluded_files": len(set(skipped) | {n for v in excluded.values() for n in v}),
        "notes": notes,
        "seed": seed,
        "per_file": per_file,
    }
