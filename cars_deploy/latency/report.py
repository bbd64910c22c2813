"""The calibration report: per-network CSV, summary JSON and a predicted-vs-measured scatter plot (PNG).

Written into one folder (by default ``NAME.calibration/`` beside the table): ``networks.csv`` (one row
per timed network: block sum, prediction, both measured passes and the errors), ``summary.json``
(the held-out figures next to the repeat-measurement ceiling, the fit, the calibration) and
``scatter.png``. Files are written atomically; the plot is drawn as every figure of the package is
(``cars_deploy._figures``). The report reads only the per-network frame and the summary, so it knows
nothing of how they were measured (``validation.py`` calls it).
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._figures import figure_png, new_figure
from .._io import atomic_write_bytes, atomic_write_text
from ..profilers.table import table_files

__all__ = ["write_report", "format_summary", "plot_scatter", "default_report_dir", "REPORT_FILES"]

#: File names inside the report folder.
REPORT_FILES: dict[str, str] = {"networks": "networks.csv", "summary": "summary.json", "scatter": "scatter.png"}


def write_report(frame: pd.DataFrame, summary: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Writes the three report files of a calibration (its per-network ``frame`` and its ``summary``)
    into ``folder``; returns their paths by kind."""
    folder = Path(folder)
    paths = {kind: folder / name for kind, name in REPORT_FILES.items()}
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.6g")
    atomic_write_text(paths["networks"], buffer.getvalue())
    atomic_write_text(paths["summary"], json.dumps(_jsonable(summary), indent=1) + "\n")
    atomic_write_bytes(paths["scatter"], plot_scatter(frame, summary))
    return paths


def plot_scatter(frame: pd.DataFrame, summary: dict[str, Any]) -> bytes:
    """PNG bytes: predicted against measured latency per network (fit, held-out random, published),
    the second measurement against the first (the noise ceiling), the identity and +-10% lines."""
    frame = frame[frame["source"] != "baseline"]
    figure = new_figure(6.4, 6.0, dpi=120)
    axis = figure.add_subplot()
    if frame["repeat_ms"].notna().any():
        axis.scatter(frame["measured_ms"], frame["repeat_ms"], marker="x", s=18, color="0.6",
                     label="2nd measurement (y) vs 1st (x)", zorder=1)
    fit = frame[frame["role"] == "fit"]
    held_random = frame[(frame["role"] == "validate") & (frame["source"] == "random")]
    published = frame[frame["source"] == "published"]
    axis.scatter(fit["measured_ms"], fit["predicted_ms"], facecolors="none", edgecolors="tab:blue", s=28,
                 label=f"fit ({len(fit)})", zorder=2)
    axis.scatter(held_random["measured_ms"], held_random["predicted_ms"], color="tab:blue", s=22,
                 label=f"held-out random ({len(held_random)})", zorder=3)
    axis.scatter(published["measured_ms"], published["predicted_ms"], color="tab:red", marker="^", s=34,
                 label=f"published ({len(published)})", zorder=4)
    for _, row in published.iterrows():
        axis.annotate(str(row["name"]).replace("CARS_", ""), (row["measured_ms"], row["predicted_ms"]),
                      fontsize=6, xytext=(3, -3), textcoords="offset points")
    values = np.concatenate([frame["measured_ms"].to_numpy(), frame["predicted_ms"].to_numpy()])
    values = values[np.isfinite(values)]
    low, high = (float(values.min()) * 0.9, float(values.max()) * 1.1) if values.size else (0.0, 1.0)
    line = np.array([low, high])
    axis.plot(line, line, color="black", linewidth=0.8)
    for factor in (0.9, 1.1):
        axis.plot(line, line * factor, color="black", linewidth=0.6, linestyle="--")
    axis.set_xlim(low, high)
    axis.set_ylim(low, high)
    axis.set_xlabel("measured latency (ms)")
    axis.set_ylabel("predicted latency (ms)")
    held = summary["validation"]["calibrated"]
    ceiling = summary["validation"].get("repeat")
    title = (f"{summary['network']} on {summary['settings'].get('device')}: held-out n={held['n']}, "
             f"MAPE {_pct(held['mape_pct'])}, <=10% {_share(held['within_10'])}, tau {_num(held['kendall_tau'])}")
    if ceiling:
        title += (f"\nrepeat measurement: MAPE {_pct(ceiling['mape_pct'])}, <=10% {_share(ceiling['within_10'])}, "
                  f"tau {_num(ceiling['kendall_tau'])}")
    axis.set_title(title, fontsize=8)
    axis.legend(fontsize=7, loc="upper left")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure_png(figure)


def format_summary(summary: dict[str, Any]) -> str:
    """A few lines for the terminal: held-out figures next to the block sum and the repeat ceiling."""
    validation = summary["validation"]
    networks = summary["networks"]
    calibration = summary["calibration"]
    lines = [
        f"calibration of {summary['table']} for {summary['network']}: model {calibration['model']}, "
        f"fitted on {networks['fit']} networks, validated on {networks['held_out']} held-out "
        f"({networks['published']} published)",
    ]
    header = f"  {'':26}{'MAPE':>8}{'<=5%':>8}{'<=10%':>8}{'tau':>8}{'bias':>8}"
    lines.append(header)
    for key, label in (("calibrated", "calibrated prediction"), ("block_sum", "raw block sum"),
                       ("repeat", "2nd measurement (ceiling)")):
        if key in validation:
            a = validation[key]
            lines.append(f"  {label:26}{_pct(a['mape_pct']):>8}{_share(a['within_5']):>8}{_share(a['within_10']):>8}"
                         f"{_num(a['kendall_tau']):>8}{_pct(a['bias_pct']):>8}")
    targets = summary["targets"]
    lines.append(
        f"  targets: MAPE <= {targets['mape_pct']:g}%, >= {targets['within_5'] * 100:.0f}% within 5%, "
        f">= {targets['within_10'] * 100:.0f}% within 10%, tau >= {targets['kendall_tau']}, "
        f">= {targets['held_out']:.0f} held-out: {'met' if summary['meets_targets'] else 'NOT met'}"
    )
    selection = summary.get("model_selection") or {}
    if selection.get("cv_mape_pct"):
        scores = ", ".join(f"{k} {_pct(v)}" for k, v in selection["cv_mape_pct"].items())
        lines.append(f"  model chosen by {selection.get('folds')}-fold CV on the fit networks: {selection.get('chosen')} "
                     f"(CV MAPE: {scores})")
    quantiles = summary.get("residual_quantiles_pct") or {}
    if quantiles.get("90") is not None:
        band = summary.get("uncertainty_pm90_pct")
        widened = "" if band is None else f"; with the drift reference's own noise, the +-90% band is +-{band:.2f}%"
        lines.append(f"  uncertainty: 90% of cross-validated residuals within +-{quantiles['90']:.2f}%{widened}")
    cost = summary.get("cost") or {}
    if cost:
        lines.append(f"  cost: {cost.get('networks_timed')} models timed x {cost.get('passes')} passes, "
                     f"{cost.get('device_minutes')} device minutes")
    for index, reference in enumerate(summary.get("reference") or [], start=1):
        if reference:
            state = "corrected" if reference.get("corrected") else "recorded only"
            lines.append(f"  drift reference, pass {index}: {reference['run_ms']:.4g} ms vs table {reference['base_ms']:.4g} ms "
                         f"({reference['drift_pct']:+.1f}%, {state})")
    if summary.get("report"):
        lines.append(f"  report: {summary['report']}")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.1f}%"


def _share(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value * 100:.0f}%"


def _num(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    return value


def default_report_dir(table_path: Path) -> Path:
    """``NAME.calibration/`` beside ``NAME.csv`` (a folder, so it never looks like a table)."""
    csv, _ = table_files(table_path)
    return csv.with_name(csv.stem + ".calibration")
