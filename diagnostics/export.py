"""A fitted normalization as plain arrays: what ``python -m diagnostics export`` writes to
``normalizer.npz`` and what :mod:`models.export` builds the torch module from.

NumPy only (no torch).  The file holds no pickled object: every entry is a number, a string
or a numeric array, so ``np.load(path)`` (``allow_pickle=False``, NumPy's default) opens it
anywhere.  :func:`load_normalizer` turns it back into a fitted
:class:`~diagnostics.normalize.Normalizer` whose ``transform`` gives the same numbers.

What the normalization is fitted on (``fit_on``):

* ``all`` (the default): every example of the dataset, as a final model trained on all of it
  would see them;
* ``train``: the training part of the fixed 70/15/15 holdout split (seed 0), as a holdout
  comparison fits it;
* ``fold``: the training part of fold ``fold`` of repetition ``repetition`` of stratified
  ``folds``-fold cross-validation, exactly as a comparison's run of that fold fitted it.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diagnostics.config import DEFAULT_MASK_SNR, SPLIT_SEED
from diagnostics.errors import NormScopeError
from diagnostics.normalize import (DB_AMIN, DB_REF, DB_TOP, INSTANCE_SCALERS, Normalizer,
                                   check_config_for, parse_config)
from diagnostics import transforms

#: The names scripts can rely on (the issue fixes them).
NPZ_NAME = "normalizer.npz"
PT2_NAME = "normalizer.pt2"
PT_NAME = "normalizer.pt"
USAGE_NAME = "USAGE.md"
#: Version of the file's layout (bump when an entry changes meaning).
FORMAT_VERSION = 1
FIT_ON = ("all", "train", "fold")


@dataclass(frozen=True)
class FitPlan:
    """Which examples an export fits on, and the words that say so."""

    fit_on: str = "all"
    fold: int | None = None
    folds: int = 5
    repetition: int = 0

    def indices(self, n: int, y: np.ndarray | None) -> np.ndarray:
        """The training indices of this plan for ``n`` examples with labels ``y``."""
        from diagnostics.data.dataset import split_indices
        from diagnostics.verdicts.design import design_folds, make_design

        if self.fit_on not in FIT_ON:
            raise NormScopeError(f"fit_on={self.fit_on!r} is unknown; use all, train or fold")
        if self.fit_on == "all":
            return np.arange(n, dtype=np.int64)
        if self.fit_on == "train":
            return split_indices(n, y, seed=SPLIT_SEED).train
        if y is None:
            raise NormScopeError("fitting on a cross-validation fold needs labels (the folds are "
                                 "stratified); give labels, or fit on all examples")
        design = make_design(y, kind="cv", folds=self.folds, seed=SPLIT_SEED)
        parts = design_folds(design, y, repetition=self.repetition)
        if self.fold is None or not 0 <= self.fold < len(parts):
            raise NormScopeError(f"fold {self.fold} does not exist: this {len(parts)}-fold "
                                 f"cross-validation has folds 0..{len(parts) - 1}")
        return parts[self.fold].train

    def describe(self, n_fit: int, n: int) -> str:
        """E.g. "all 800 examples" or "the training part of fold 2 of repetition 0 of
        5-fold cross-validation (544 of 800 examples)"."""
        if self.fit_on == "all":
            return f"all {n:,} examples of the dataset"
        if self.fit_on == "train":
            return (f"the training part of the 70/15/15 holdout split, seed {SPLIT_SEED} "
                    f"({n_fit:,} of {n:,} examples)")
        return (f"the training part of fold {self.fold} of repetition {self.repetition} of "
                f"stratified {self.folds}-fold cross-validation, as a comparison fits it "
                f"({n_fit:,} of {n:,} examples)")


def fit_for_export(ds, config: str, *, plan: FitPlan = FitPlan(),
                   mask_snr: float = DEFAULT_MASK_SNR, std_floor: float = 0.0) -> tuple[Normalizer, dict]:
    """Fit ``config`` on ``ds`` as ``plan`` says; return the Normalizer and the metadata.

    Raises
    ------
    NormScopeError
        A config that does not parse or does not apply to the dataset (compression on signed
        data, a mask that removes every row): one sentence.
    """
    parse_config(config)  # a bad name before any data is read
    idx = plan.indices(ds.n, ds.y)
    # Every example is checked, not only the fitting ones: the module will meet them all.
    cfg = check_config_for(ds.X, config)
    norm = Normalizer(cfg, mask_snr=mask_snr, std_floor=std_floor).fit(ds.X, indices=idx)
    meta = {"dataset_id": ds.id, "dataset_name": ds.name, "fit_on": plan.fit_on,
            "fold": -1 if plan.fold is None else int(plan.fold), "folds": int(plan.folds),
            "repetition": int(plan.repetition), "fitted_on": plan.describe(idx.size, ds.n),
            "row_label": ds.row_label}
    return norm, meta


def versions() -> dict[str, str]:
    """Library versions the fit ran with (librosa only where installed)."""
    out = {"python": platform.python_version(), "numpy": np.__version__}
    try:
        import librosa
        import scipy

        out["librosa"], out["scipy"] = librosa.__version__, scipy.__version__
    except ImportError:  # pragma: no cover - librosa is a requirement
        pass
    try:
        from importlib.metadata import version

        out["normscope"] = version("normscope")
    except Exception:  # noqa: BLE001 - not installed as a package: no version to give
        out["normscope"] = "checkout"
    return out


def normalizer_arrays(norm: Normalizer, meta: dict | None = None) -> dict[str, np.ndarray]:
    """Everything a fitted Normalizer needs, as plain arrays (the ``normalizer.npz`` entries).

    Entries: ``format_version``; ``config`` (canonical name), ``compress`` ("" for none),
    ``scaler``, ``mask``; ``pcen_gain``, ``pcen_bias``, ``pcen_power``, ``pcen_t``, ``pcen_eps``,
    ``pcen_b`` (the smoothing coefficient used), ``pcen_sr``, ``pcen_hop``,
    ``pcen_input_scale``; ``shrink_w``; ``db_amin``, ``db_ref``, ``db_top``; ``shape_in`` (H, W),
    ``keep_rows`` (bool, H: False rows are dropped), ``center`` and ``scale`` (float64, shape
    (H', W), broadcast from their fitted shape), ``mask_snr``, ``std_floor``, ``row_snr``
    (H), ``n_samples_seen``; the metadata (``dataset_id``, ``dataset_name``, ``fit_on``,
    ``fold``, ``folds``, ``repetition``, ``fitted_on``) and ``version_<library>`` strings.
    """
    norm._check_fitted()
    cfg = norm.config_
    H, W = norm.shape_in_
    kept = int(norm.keep_rows_.sum())
    pc = transforms.param_values("pcen", cfg.compress_params if cfg.compress == "pcen" else ())
    sw = transforms.param_values("shrink", cfg.scaler_params if cfg.scaler == "shrink" else ())
    a: dict[str, np.ndarray] = {
        "format_version": np.array(FORMAT_VERSION),
        "config": np.array(cfg.name), "compress": np.array(cfg.compress or ""),
        "scaler": np.array(cfg.scaler), "mask": np.array(bool(cfg.mask)),
        **{f"pcen_{k}": np.array(v) for k, v in pc.items()},
        "pcen_b": np.array(transforms.pcen_b(pc["t"])), "pcen_sr": np.array(transforms.PCEN_SR),
        "pcen_hop": np.array(transforms.PCEN_HOP),
        "pcen_input_scale": np.array(transforms.PCEN_INPUT_SCALE),
        "shrink_w": np.array(sw["w"]),
        "db_amin": np.array(DB_AMIN), "db_ref": np.array(DB_REF), "db_top": np.array(DB_TOP),
        "shape_in": np.array([H, W], np.int64), "keep_rows": np.asarray(norm.keep_rows_, bool),
        "center": np.broadcast_to(np.asarray(norm.center_, np.float64), (kept, W)).copy(),
        "scale": np.broadcast_to(np.asarray(norm.scale_, np.float64), (kept, W)).copy(),
        "mask_snr": np.array(float(norm.mask_snr)), "std_floor": np.array(float(norm.std_floor)),
        "row_snr": np.asarray(norm.row_snr_, np.float64),
        "n_samples_seen": np.array(int(norm.n_samples_seen_)),
    }
    for k, v in (meta or {}).items():
        a[k] = np.array(v)
    for lib, v in versions().items():
        a[f"version_{lib}"] = np.array(v)
    return a


def save_npz(target, arrays: dict[str, np.ndarray]) -> None:
    """Write the arrays uncompressed (a path or a binary file object); never pickles."""
    for k, v in arrays.items():
        if np.asarray(v).dtype == object:
            raise NormScopeError(f"entry {k} would need pickle; this is a bug")
    np.savez(target, **arrays)


def read_npz(path) -> dict[str, np.ndarray]:
    """The entries of a ``normalizer.npz`` (without pickle)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as exc:
        raise NormScopeError(f"{path} is not a normalizer.npz NormScope can read ({exc})") from None


def load_normalizer(source) -> Normalizer:
    """A fitted :class:`Normalizer` from a ``normalizer.npz`` path or its entries.

    ``transform`` of the result equals the original's (``stats_`` is not stored: it is None).
    """
    a = read_npz(source) if not isinstance(source, dict) else source
    missing = [k for k in ("config", "keep_rows", "center", "scale", "shape_in") if k not in a]
    if missing:
        raise NormScopeError(f"this normalizer.npz lacks {', '.join(missing)}; export it again")
    if int(a.get("format_version", 0)) > FORMAT_VERSION:
        raise NormScopeError(f"this normalizer.npz has format {int(a['format_version'])}; this "
                             f"NormScope reads up to {FORMAT_VERSION}: update NormScope")
    cfg = parse_config(str(a["config"]))
    norm = Normalizer(cfg, mask_snr=float(a.get("mask_snr", DEFAULT_MASK_SNR)),
                      std_floor=float(a.get("std_floor", 0.0)))
    norm.config_ = cfg
    norm.stats_ = None
    norm.keep_rows_ = np.asarray(a["keep_rows"], bool)
    norm.row_snr_ = np.asarray(a.get("row_snr", np.full(norm.keep_rows_.size, np.nan)))
    center, scale = np.asarray(a["center"], np.float64), np.asarray(a["scale"], np.float64)
    if cfg.scaler == "none" or cfg.scaler in INSTANCE_SCALERS:
        center, scale = np.zeros((1, 1)), np.ones((1, 1))
    norm.center_, norm.scale_ = center, scale
    norm.n_samples_seen_ = int(a.get("n_samples_seen", 0))
    norm.n_floored_ = None
    norm.shape_in_ = tuple(int(v) for v in a["shape_in"])
    return norm


def usage_text(arrays: dict[str, np.ndarray], *, module_file: str, why: str = "") -> str:
    """USAGE.md (from the template ``export_usage.md`` beside this module): what the files
    are, then both in a plain torch training loop.  ``why``: why the module is TorchScript
    (for ``normalizer.pt``)."""
    H, W = (int(v) for v in arrays["shape_in"])
    kept = int(np.asarray(arrays["keep_rows"]).sum())
    dropped = np.flatnonzero(~np.asarray(arrays["keep_rows"], bool)).tolist()
    how = ("`torch.export` (`torch.export.load(...).module()`)" if module_file == PT2_NAME
           else f"TorchScript (`torch.jit.load(...)`), "
           f"{why or 'because torch.export could not export it'}")
    load = (f'norm = torch.export.load("{module_file}").module()' if module_file == PT2_NAME
            else f'norm = torch.jit.load("{module_file}")')
    mask = (f"Masked rows are **dropped** (not zeroed): rows {dropped} of {H} "
            f"(row SNR under {float(arrays['mask_snr']):g} on the fitting data), so the output "
            f"has {kept} rows." if dropped else "No row is masked: the output has all "
                                                 f"{H} rows.")
    cfg = str(arrays["config"])
    scaler = str(arrays["scaler"])
    cs = (f"`center` and `scale` ({kept} x {W}; 0 and 1 here: `{scaler}` z-scores each "
          "example by its own moments, nothing fitted)" if scaler in INSTANCE_SCALERS
          else f"`center` and `scale` ({kept} x {W})")
    template = (Path(__file__).with_name("export_usage.md")).read_text(encoding="utf-8")
    return template.format(
        cfg=cfg, cs=cs, H=H, W=W, kept=kept, mask=mask, how=how, load=load, npz=NPZ_NAME,
        module_file=module_file, dataset_name=str(arrays.get("dataset_name", "")),
        dataset_id=str(arrays.get("dataset_id", "")),
        fitted_on=str(arrays.get("fitted_on", "the given examples")))
