"""Sweep summaries: rank the runs of a hydra multirun by validation loss (CSV + markdown)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

COLUMNS = (
    "rank",
    "run",
    "lr",
    "max_episodes",
    "steps",
    "val_loss",
    "val_token_accuracy",
    "val_action_l1",
    "checkpoint",
)


def summarize_sweep(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Collect ``summary.json`` files under ``sweep_dir`` and write ``sweep_summary.{csv,md}``."""
    root = Path(sweep_dir)
    rows = []
    for path in sorted(root.rglob("summary.json")):
        summary = json.loads(path.read_text())
        val = summary.get("val") or {}
        rows.append({
            "run": str(path.parent.relative_to(root)) if path.parent != root else ".",
            "lr": summary.get("lr"), "max_episodes": summary.get("max_episodes"), "steps": summary.get("steps"),
            "val_loss": val.get("loss"), "val_token_accuracy": val.get("token_accuracy"),
            "val_action_l1": val.get("action_l1"), "checkpoint": summary.get("checkpoint"),
        })  # fmt: skip
    rows.sort(key=lambda r: float("inf") if r["val_loss"] is None else r["val_loss"])
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    with open(root / "sweep_summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    (root / "sweep_summary.md").write_text("# Sweep summary (ranked by validation loss)\n\n" + "\n".join(lines) + "\n")
    return rows


class SweepSummary(Callback):
    """Hydra callback: after a multirun, write the ranked summary into the sweep folder."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        rows = summarize_sweep(config.hydra.sweep.dir)
        print(f"sweep summary ({len(rows)} runs): {Path(config.hydra.sweep.dir) / 'sweep_summary.md'}")
