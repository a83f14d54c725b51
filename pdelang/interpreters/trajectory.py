"""A run's trajectory on disk, and a figure of its per-layer particle diagnostics.

:func:`save_trajectory` writes the states of a run (at every layer boundary, or after every
time step) with their times in a format that opens directly:

* ``.pt`` (always available): a dict for ``torch.load`` with
  ``states`` (T, B, N, C) in the run's dtype, ``times`` (T,) float64, ``layers`` (T,) and
  ``steps`` (T,) int64 (the layer boundary / time step each state follows: a state with
  ``steps[k] = s`` is the state at ``t0 + s Δt``), ``dims`` (the names of ``states``'
  dimensions), ``spec_hash`` (:func:`pdelang.compiler.spec.load.canonical_hash`), ``spec``,
  ``name``, ``every`` (``"layer"`` or ``"substep"``), ``dt`` and ``output`` (the returned
  state: the last state, after the final norm where the spec has one).
* ``.nc`` (netCDF) or ``.zarr`` through xarray, an optional extra
  (``pip install 'pdelang[xarray]'``; ``.zarr`` needs the ``zarr`` package too): one
  Dataset with the variable ``u`` on the dimensions ``(time, batch, token, channel)``, the
  coordinates ``time``, ``layer`` and ``step`` (along ``time``) and ``output`` on
  ``(batch, token, channel)``; ``spec_hash``, ``spec``, ``name``, ``every`` and ``dt`` are
  attributes.  Without the ``netCDF4`` or ``h5netcdf`` package xarray writes netCDF3 with
  SciPy (a pdelang dependency).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

from pdelang.compiler.spec.initial import option_location
from pdelang.errors import PdelangError
from pdelang.compiler.spec.limits import how_to_raise, limit
from pdelang.io import atomic_directory, atomic_path, save_tensor, save_figure

FORMATS = (".pt", ".nc", ".zarr")
DIMS = ("time", "batch", "token", "channel")


def trajectory_format(path: str, option: str = "--trajectory") -> str:
    """The format of a trajectory file from its suffix, checked before a run starts: a
    located error for another suffix, a missing directory or a missing optional package."""
    suffix = Path(path).suffix.lower()
    where = option_location(option, path)
    if suffix not in FORMATS:
        raise PdelangError(f"{option} {path}: the format comes from the suffix, one of "
                           f"{', '.join(FORMATS)}", where,
                           "e.g. --trajectory run.pt (or run.nc / run.zarr with xarray)")
    if not Path(path).resolve().parent.is_dir():
        raise PdelangError(f"{option} {path}: the directory does not exist", where,
                           "create the directory first, or save elsewhere")
    if suffix in (".nc", ".zarr"):
        missing = [name for name in ("xarray", "zarr" if suffix == ".zarr" else None)
                   if name and importlib.util.find_spec(name) is None]
        if missing:
            install = ("pip install 'pdelang[xarray]'" if missing == ["xarray"] else
                       f"pip install {' '.join(missing)}")
            verb = "is" if len(missing) == 1 else "are"
            raise PdelangError(f"{option} {path}: writing {suffix} needs "
                               f"{' and '.join(missing)}, which {verb} not installed", where,
                               f"{install}, or save the trajectory as .pt (always available)")
    return suffix


def check_trajectory_size(states: int, batch: int, tokens: int, channels: int,
                          option: str, path: str) -> None:
    """Refuse a trajectory larger than the ``state_values`` limit before the run."""
    values = states * batch * tokens * channels
    if values > limit("state_values"):
        raise PdelangError(f"a trajectory of {states:,} states of {batch:,} × {tokens:,} × "
                           f"{channels:,} has {values:,} values, too many to keep",
                           option_location(option, path),
                           "keep layer boundaries only (--every layer), or use a smaller "
                           "--batch or --tokens; " + how_to_raise("state_values"))


def save_trajectory(path: str, states, times, layers, steps, *, output, spec_hash: str,
                    spec: str, name: str, every: str, dt: float) -> Path:
    """Write a trajectory (``states``: list of (B, N, C) tensors at ``times``) to ``path``,
    in the format of its suffix (see the module docstring); atomically."""
    import torch  # lazy: torch

    stacked = torch.stack([s.detach().cpu() for s in states])
    times_t = torch.tensor([float(t) for t in times], dtype=torch.float64)
    meta = {"spec_hash": spec_hash, "spec": str(spec), "name": name, "every": every,
            "dt": float(dt)}
    suffix = Path(path).suffix.lower()
    if suffix == ".pt":
        return save_tensor({
            "states": stacked, "times": times_t,
            "layers": torch.tensor(list(layers), dtype=torch.int64),
            "steps": torch.tensor(list(steps), dtype=torch.int64),
            "dims": DIMS, "output": output.detach().cpu(), **meta}, path)
    import xarray as xr  # lazy: xarray

    values = stacked.float().numpy() if stacked.dtype in (torch.bfloat16, torch.float16) \
        else stacked.numpy()
    out = output.detach().cpu()
    out = (out.float() if out.dtype in (torch.bfloat16, torch.float16) else out).numpy()
    data = xr.Dataset(
        {"u": (DIMS, values), "output": (DIMS[1:], out)},
        coords={"time": ("time", times_t.numpy()),
                "layer": ("time", list(layers)), "step": ("time", list(steps))},
        attrs=meta)
    data["u"].attrs["long_name"] = "state at the time (layer boundary or time step)"
    data["output"].attrs["long_name"] = "the returned state (after the final norm, if any)"
    if suffix == ".nc":
        with atomic_path(path) as tmp:
            data.to_netcdf(tmp, format=_netcdf_format())
    else:
        with atomic_directory(path) as tmp:
            data.to_zarr(tmp, mode="w")
    return Path(path)


def _netcdf_format() -> str | None:
    """netCDF4 where a netCDF4 engine is installed, else netCDF3 (SciPy's writer)."""
    if importlib.util.find_spec("netCDF4") or importlib.util.find_spec("h5netcdf"):
        return None
    return "NETCDF3_64BIT"


# ----------------------------------------------------------------------------- the figure
def check_plot(path: str, option: str = "--plot") -> None:
    """A figure needs matplotlib (the ``reference`` extra) and an existing directory."""
    where = option_location(option, path)
    if importlib.util.find_spec("matplotlib") is None:
        raise PdelangError(f"{option} {path}: plotting needs matplotlib, which is not "
                           "installed", where, "pip install 'pdelang[reference]' or "
                           "pip install matplotlib")
    if not Path(path).resolve().parent.is_dir():
        raise PdelangError(f"{option} {path}: the directory does not exist", where,
                           "create the directory first, or save elsewhere")


def plot_diagnostics(rows: list[dict], path: str, title: str) -> Path:
    """Four panels against depth time t: mean token norm, mean pairwise cosine, effective
    rank and the rank-collapse residual (log scale) of ``pdelang run``'s rows."""
    import matplotlib  # lazy: matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib

    times = [row["time"] for row in rows]
    panels = [("norm", "mean token norm", "linear"),
              ("mean_cosine", "mean pairwise cosine", "linear"),
              ("effective_rank", "effective rank", "linear"),
              ("residual", "‖X − 1x̄ᵀ‖_F / ‖X‖_F", "log")]
    figure, axes = plt.subplots(1, 4, figsize=(14, 3.2), constrained_layout=True)
    for ax, (key, label, scale) in zip(axes, panels):
        values = [row[key] for row in rows]
        if scale == "log" and all(v > 0 for v in values if not math.isnan(v)) \
                and any(v > 0 for v in values):
            ax.set_yscale("log")
        ax.plot(times, values, marker="o", markersize=3)
        ax.set_xlabel("t (depth)")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[1].set_ylim(min(-0.05, *(r["mean_cosine"] for r in rows)), 1.05)
    figure.suptitle(title, fontsize=11)
    try:
        return save_figure(figure, path, dpi=120)
    finally:
        plt.close(figure)
