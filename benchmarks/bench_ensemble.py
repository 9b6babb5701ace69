"""Part IV numbers for the README, built the tour's way on digits with tiny_cnn: the LR finder (B.1), one
tuned run at its pick, a seed ensemble (IV.1) and a distilled student (IV.5) that start from the session's
chosen configuration, beside the same ensemble trained at the old fixed 1e-3 for contrast. ``--more`` adds
a checkpoint ensemble (IV.3) and EMA/SWA (IV.4). Prints markdown tables; timings are side-by-side ratios.

    .venv/bin/python benchmarks/bench_ensemble.py [--epochs 8] [--n 5] [--more]
"""

from __future__ import annotations

import argparse
import tempfile

import pandas as pd

import workbench as wb
from workbench.ensemble import averaging_curves


def md(df, floatfmt=".4f") -> str:
    """A DataFrame as a markdown table (no tabulate dependency)."""
    def cell(v):
        return format(v, floatfmt) if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def tour(s, epochs: int, n: int):
    """The README's tour: LR finder, a tuned run at its pick, then the seed ensemble and distillation from
    the chosen configuration (no lr or epochs passed: the session supplies them)."""
    found = s.lr_find()
    tuned = s.fit(epochs=epochs, lr=found.suggestion)
    chosen = s.chosen_config()
    ens = s.ensemble("seeds", n=n)
    dist = s.distill(ens, temperature=4.0, alpha=0.7, repeats=11)
    return found, tuned, chosen, ens, dist


def summary_table(tuned, ens, old) -> pd.DataFrame:
    rows = [("single tuned run (seed 0)", float(tuned.metrics["val_metric"].iloc[-1])),
            ("mean member", ens.mean_member_metric), ("best member", ens._best_member()),
            (f"**ensemble of {len(ens.members)}**", ens.metric)]
    if old is not None:
        rows += [("mean member at the old fixed lr 1e-3", old.mean_member_metric),
                 ("ensemble at the old fixed lr 1e-3", old.metric)]
    return pd.DataFrame(rows, columns=["model", "test accuracy"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--n", type=int, default=5)
    p.add_argument("--no-contrast", action="store_true", help="skip the ensemble at the old fixed lr 1e-3")
    p.add_argument("--more", action="store_true", help="also the checkpoint ensemble (IV.3) and EMA/SWA (IV.4)")
    a = p.parse_args()
    s = wb.Session(wb.models.tiny_cnn, *wb.datasets.digits(), seed=0, root=tempfile.mkdtemp())

    found, tuned, chosen, ens, dist = tour(s, a.epochs, a.n)
    old = None if a.no_contrast else s.ensemble("seeds", n=a.n, lr=1e-3, epochs=5)
    print(f"## The tour: LR finder pick {found.suggestion:.3g}, tuned run {a.epochs} epochs; chosen configuration: "
          f"lr {chosen['lr']:.3g}, {chosen['epochs']} epochs ({chosen['source']})\n")
    print(md(summary_table(tuned, ens, old)))
    print(f"\nall {ens.n_eval} test images; ensemble - single tuned run: "
          f"{ens.metric - float(tuned.metrics['val_metric'].iloc[-1]):+.4f}, "
          f"ensemble - mean member: {ens.improvement:+.4f}\n")
    print(md(ens.gains))

    print(f"\n## IV.5 distillation of the {a.n}-seed ensemble into tiny_cnn at half width, T=4, alpha=0.7, "
          f"lr {dist.run.config['lr']:.3g}, {dist.run.config['epochs']} epochs (the chosen configuration)\n")
    print(md(dist.table.drop(columns=["run_id"]), floatfmt=".4g"))
    print(f"\ndistilled - scratch: {dist.row('distilled')['metric'] - dist.row('scratch')['metric']:+.4f}; "
          f"teacher / student inference time (median of 11 passes over the test set): {dist.speedup:.1f}x")

    if a.more:
        ckpt = s.ensemble("checkpoints", n=min(a.n, a.epochs), run=tuned)
        print(f"\n## IV.3 checkpoint ensemble of the tuned run (last {len(ckpt.members)} epochs)\n")
        print(md(ckpt.gains))
        run = s.fit(epochs=a.epochs, lr=chosen["lr"], seed=0, ema=0.99, swa=True)
        print("\n## IV.4 EMA (decay 0.99) and SWA vs raw weights, seed 0\n")
        print(md(averaging_curves(run)))


if __name__ == "__main__":
    main()
