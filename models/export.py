"""The fitted normalization as a torch module that travels without NormScope.

:func:`build_module` turns the entries of a ``normalizer.npz``
(:func:`diagnostics.export.normalizer_arrays`) into an ``nn.Module`` that takes ``(B, 1, H, W)``
float32 raw values and returns ``(B, 1, H', W)`` float32, with exactly what
``Normalizer.transform`` computes: the compression (log1p, dB as librosa's ``power_to_db`` per
example, PCEN as ``librosa.pcen`` of ``sqrt(x) * 2**31``), the masked rows **dropped**, then
the scaler (fitted centre and scale, or each example's own moments for the instance scalers),
in float64 inside; non-finite values come out as 0.  PCEN's first-order smoothing filter runs
as one product with a (W, W) matrix of the filter's impulse response plus librosa's initial
state, so the module has no Python loop and exports whole.

:func:`write_export` writes ``normalizer.npz``, then ``normalizer.pt2`` (``torch.export``,
dynamic batch), or ``normalizer.pt`` (TorchScript) where ``torch.export`` fails, then
``USAGE.md``.  :func:`export_zip` gives the same files as one zip in memory, for a download
button.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from diagnostics import export as spec
from diagnostics.data.files import atomic_output
from diagnostics.errors import NormScopeError

_F32_MAX = float(np.finfo(np.float32).max)
_EPS64 = float(np.finfo(np.float64).eps)


def _f(a, key: str) -> float:
    return float(np.asarray(a[key]))


class NormalizerModule(nn.Module):
    """``(B, 1, H, W)`` float32 raw values -> ``(B, 1, H', W)`` float32 normalized.

    Every fitted number is a float64 buffer; the branches are fixed when the module is built.
    """

    def __init__(self, arrays: dict):
        super().__init__()
        a = arrays
        self.config = str(np.asarray(a["config"]))
        self.compress = str(np.asarray(a["compress"]))
        self.scaler = str(np.asarray(a["scaler"]))
        H, W = (int(v) for v in np.asarray(a["shape_in"]))
        self.H, self.W = H, W
        keep = np.asarray(a["keep_rows"], bool)
        self.drop = not bool(keep.all())
        self.register_buffer("keep_idx", torch.from_numpy(np.flatnonzero(keep).astype(np.int64)))
        kept = int(keep.sum())
        center = np.broadcast_to(np.asarray(a["center"], np.float64), (kept, W))
        scale = np.broadcast_to(np.asarray(a["scale"], np.float64), (kept, W))
        self.register_buffer("center", torch.from_numpy(np.array(center, np.float64)))
        self.register_buffer("scale", torch.from_numpy(np.array(scale, np.float64)))
        self.std_floor = _f(a, "std_floor")
        self.db_amin, self.db_ref, self.db_top = _f(a, "db_amin"), _f(a, "db_ref"), _f(a, "db_top")
        self.gain, self.bias = _f(a, "pcen_gain"), _f(a, "pcen_bias")
        self.power, self.eps = _f(a, "pcen_power"), _f(a, "pcen_eps")
        self.input_scale = _f(a, "pcen_input_scale")
        b = _f(a, "pcen_b")
        # scipy.signal.lfilter([b], [1, b - 1], S, zi=1 - b) along time, as librosa.pcen runs
        # it: M[t] = sum_k<=t b (1-b)^(t-k) S[k] + (1-b)^(t+1).
        t = np.arange(W)
        lag = t[None, :] - t[:, None]  # [k, t] = t - k
        with np.errstate(over="ignore", under="ignore"):
            A = np.where(lag >= 0, b * (1.0 - b) ** np.maximum(lag, 0), 0.0)
        self.register_buffer("pcen_A", torch.from_numpy(A))
        self.register_buffer("pcen_c", torch.from_numpy((1.0 - b) ** (t + 1.0)))

    def _compress(self, x: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
        if self.compress == "log1p":
            return torch.sign(x) * torch.log1p(torch.abs(x))
        if self.compress == "db":
            xs = torch.where(finite, x, torch.full_like(x, self.db_amin))
            db = 10.0 * torch.log10(torch.clamp(xs, min=self.db_amin))
            db = db - 10.0 * math.log10(max(self.db_amin, self.db_ref))
            top = torch.amax(db, dim=(1, 2), keepdim=True)
            db = torch.maximum(db, top - self.db_top)
            return torch.where(finite, db, x)
        if self.compress == "pcen":
            s = torch.where(finite, x, torch.zeros_like(x))
            s = torch.sqrt(torch.clamp(s, min=0.0)) * self.input_scale
            m = torch.matmul(s, self.pcen_A) + self.pcen_c
            smooth = torch.exp(-self.gain * (math.log(self.eps) + torch.log1p(m / self.eps)))
            if self.power == 0:
                out = torch.log1p(s * smooth)
            elif self.bias == 0:
                out = torch.exp(self.power * (torch.log(s) + torch.log(smooth)))
            else:
                out = (self.bias ** self.power) * torch.expm1(
                    self.power * torch.log1p(s * smooth / self.bias))
            return torch.where(finite, out, x)
        return x

    def _instance(self, x: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
        dims = (2,) if self.scaler == "instance_row" else (1, 2)
        xz = torch.where(finite, x, torch.zeros_like(x))
        cnt = finite.to(x.dtype).sum(dim=dims, keepdim=True)
        mean = xz.sum(dim=dims, keepdim=True) / torch.clamp(cnt, min=1.0)
        dev = torch.where(finite, x - mean, torch.zeros_like(x))
        var = (dev * dev).sum(dim=dims, keepdim=True) / torch.clamp(cnt, min=1.0)
        # scikit-learn's constant rule (diagnostics.stats.accumulate.is_constant): scale 1.
        bound = cnt * _EPS64 * var + (cnt * mean * _EPS64) ** 2
        const = (~(var > bound)) | (cnt == 0)
        scale = torch.where(const, torch.ones_like(var), torch.sqrt(var))
        if self.std_floor > 0:
            scale = torch.clamp(scale, min=self.std_floor)
        return (x - mean) / scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)[:, 0]
        x = self._compress(x, torch.isfinite(x))
        if self.drop:
            x = torch.index_select(x, 1, self.keep_idx)
        finite = torch.isfinite(x)
        if self.scaler in ("instance", "instance_row"):
            out = self._instance(x, finite)
        else:
            out = (x - self.center) / self.scale
        out = torch.where(finite & ~torch.isnan(out), out, torch.zeros_like(out))
        out = torch.clamp(out, min=-_F32_MAX, max=_F32_MAX)
        return out.to(torch.float32).unsqueeze(1)


def build_module(arrays: dict) -> NormalizerModule:
    """The module of a ``normalizer.npz``'s entries, in eval mode."""
    return NormalizerModule(arrays).eval()


def export_program(module: NormalizerModule, target, *,
                   torchscript: bool = False) -> tuple[str, str]:
    """Save ``module`` to ``target`` (path or binary file); returns ``(format, why)``: the
    format ("pt2" or "pt") and, for "pt", the words that say why it is TorchScript.

    ``torch.export`` with a dynamic batch (traced at B=2: B=1 would be specialised); where that
    fails, or where ``torchscript`` asks for it (libtorch in C++, a torch without
    ``torch.export``), TorchScript (``torch.jit.trace``, whose batch axis is dynamic as the
    module has no shape-dependent Python branch).
    """
    example = torch.zeros(2, 1, module.H, module.W, dtype=torch.float32)
    why = "because it was asked for (`--torchscript`)"
    if not torchscript:
        try:
            batch = torch.export.Dim("batch")
            ep = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
            torch.export.save(ep, target)
            return "pt2", ""
        except Exception as exc:  # noqa: BLE001 - any export failure falls back to TorchScript
            if hasattr(target, "seek"):
                target.seek(0)
                target.truncate()
            why = f"because torch.export could not export it ({type(exc).__name__})"
    traced = torch.jit.trace(module, example, check_trace=False)
    torch.jit.save(traced, target)
    return "pt", why


def write_export(out_dir: str | os.PathLike, arrays: dict, *,
                 torchscript: bool = False) -> list[Path]:
    """Write ``normalizer.npz``, then ``normalizer.pt2`` (or ``.pt``: where torch.export fails,
    or ``torchscript``), then ``USAGE.md`` into ``out_dir`` (created if missing), each complete
    or not at all; returns their paths.

    A ``normalizer.pt`` / ``.pt2`` of the other format left there by an earlier export is
    removed, so the folder never holds two modules.
    """
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise NormScopeError(f"--out {out} is a file; name a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NormScopeError(f"cannot create {out}: {exc.strerror}") from None
    npz = out / spec.NPZ_NAME
    with atomic_output(npz, "wb") as fh:
        spec.save_npz(fh, arrays)
    module = build_module(spec.read_npz(npz))  # built from what was written
    buf = io.BytesIO()
    kind, why = export_program(module, buf, torchscript=torchscript)
    name = spec.PT2_NAME if kind == "pt2" else spec.PT_NAME
    with atomic_output(out / name, "wb") as fh:
        fh.write(buf.getvalue())
    other = out / (spec.PT_NAME if kind == "pt2" else spec.PT2_NAME)
    if other.is_file():
        other.unlink()
    usage = out / spec.USAGE_NAME
    with atomic_output(usage, "w", encoding="utf-8") as fh:
        fh.write(spec.usage_text(arrays, module_file=name, why=why))
    return [npz, out / name, usage]


def export_zip(ds, config: str, *, plan: spec.FitPlan = spec.FitPlan(), mask_snr: float | None = None,
               std_floor: float = 0.0) -> tuple[bytes, str]:
    """Fit ``config`` on dataset ``ds`` and return ``(zip bytes, file name)``: the zip holds
    ``normalizer.npz``, ``normalizer.pt2`` (or ``.pt``) and ``USAGE.md``, as the CLI writes
    them.  Pure apart from a temporary folder; for the app's download button.

    Raises
    ------
    NormScopeError
        A config that does not apply to the dataset (one sentence).
    """
    from diagnostics.config import DEFAULT_MASK_SNR

    norm, meta = spec.fit_for_export(ds, config, plan=plan, std_floor=std_floor,
                                     mask_snr=DEFAULT_MASK_SNR if mask_snr is None else mask_snr)
    arrays = spec.normalizer_arrays(norm, meta)
    with tempfile.TemporaryDirectory(prefix="normscope-export-") as tmp:
        paths = write_export(tmp, arrays)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for p in paths:
                z.write(p, arcname=p.name)
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in norm.config_.name)
    return buf.getvalue(), f"normalizer-{ds.id[:12]}-{safe}.zip"
