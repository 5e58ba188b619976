"""The evaluation report: one folder with ``metrics.json``, ``report.md`` and its figures.

:func:`write_report` reads the metrics dict the evaluation built into a
:class:`~sim2real.evaluation.document.MetricsDocument` (the schema; nothing is written when it
does not fit), then writes ``metrics.json`` (:mod:`~sim2real.evaluation.document`),
``success_per_variant.png``, ``factors.png`` (when factors exist), ``action_errors.png`` (when
open-loop replay metrics exist), ``feature_embedding.png`` (when encoder features are given)
(:mod:`~sim2real.evaluation.plots`) and ``report.md`` (:mod:`~sim2real.evaluation.markdown`).
Episode videos and contact sheets come from :mod:`~sim2real.evaluation.media`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from numpy.typing import ArrayLike

from sim2real.evaluation.document import (
    MetricsDocument,
    closed_loop_entry,
    new_metrics,
    plain_metrics,
    save_metrics,
)
from sim2real.evaluation.markdown import markdown_report
from sim2real.evaluation.media import write_video
from sim2real.evaluation.plots import (
    plot_action_errors,
    plot_factors,
    plot_feature_embedding,
    plot_success_per_variant,
)

__all__ = ["closed_loop_entry", "new_metrics", "write_report", "write_video"]


def write_report(
    metrics: Mapping[str, Any],
    output_dir: Path | str,
    videos: Mapping[str, Path] | None = None,
    attention_png: Path | None = None,
    features: Mapping[str, ArrayLike] | None = None,
) -> dict[str, Path]:
    """Read ``metrics`` as a :class:`MetricsDocument` and write metrics.json, report.md and the
    PNG plots into ``output_dir``.

    Args:
        metrics: a metrics dict (:func:`new_metrics`, filled in); numpy scalars and arrays are
            accepted and converted, NaN/inf become ``null`` (:func:`plain_metrics`).
        output_dir: folder to write into (created if needed).
        videos: name -> path of episode videos (GIFs are embedded, other files linked),
            linked relative to ``output_dir``.
        attention_png: an attention-map image to embed, or None.
        features: name -> encoder features of shape (N, D), e.g. ``{"real": ..., "sim": ...}``;
            plotted as a 2-D PCA embedding in ``feature_embedding.png``.

    Returns:
        Name -> path of every file written: ``metrics_json``, ``report_md``,
        ``success_per_variant_png`` and, when their inputs exist, ``factors_png``,
        ``action_errors_png``, ``feature_embedding_png``.

    Raises:
        SchemaError: ``metrics`` does not fit the document (nothing is written); the message
            names every problem.
    """
    document = MetricsDocument.from_dict(plain_metrics(metrics))
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"metrics_json": save_metrics(document, out / "metrics.json")}
    written.update(_figures(document, out, features))
    report_path = out / "report.md"
    report_path.write_text(markdown_report(document.to_dict(), out, videos, attention_png, written), encoding="utf-8")
    written["report_md"] = report_path
    return written


def _figures(document: MetricsDocument, out: Path, features: Mapping[str, ArrayLike] | None) -> dict[str, Path]:
    """Draw the figures whose inputs exist; name -> path."""
    data = document.to_dict()
    written = {"success_per_variant_png": out / "success_per_variant.png"}
    plot_success_per_variant(data["closed_loop"], written["success_per_variant_png"])
    if any(data["factors"].values()):
        written["factors_png"] = out / "factors.png"
        plot_factors(data["factors"], written["factors_png"])
    open_loop = (data["replay"] or {}).get("open_loop")
    if open_loop and any(
        (open_loop.get(side) or {}).get(key) for side in ("real", "sim") for key in ("normalized_l1", "normalized_mse")
    ):
        written["action_errors_png"] = out / "action_errors.png"
        plot_action_errors(open_loop, written["action_errors_png"])
    if features:
        written["feature_embedding_png"] = out / "feature_embedding.png"
        plot_feature_embedding(features, written["feature_embedding_png"])
    return written
