"""Part IV numbers for the README: seed ensemble (IV.1), checkpoint ensemble (IV.3), EMA/SWA vs raw (IV.4),
distillation (IV.5) on digits with tiny_cnn. Prints markdown tables; timings are side-by-side ratios.

    .venv/bin/python benchmarks/bench_ensemble.py [--epochs 8] [--n 5]
"""

from __future__ import annotations

import argparse
import tempfile

import workbench as wb
from workbench.ensemble import averaging_curves, distill, ensemble


def md(df, floatfmt=".4f") -> str:
    """A DataFrame as a markdown table (no tabulate dependency)."""
    def cell(v):
        return format(v, floatfmt) if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--n", type=int, default=5)
    p.add_argument("--lr", type=float, default=3e-3)
    a = p.parse_args()
    s = wb.Session(wb.models.tiny_cnn, *wb.datasets.digits(), seed=0, root=tempfile.mkdtemp())

    seeds = ensemble(s, "seeds", n=a.n, epochs=a.epochs, lr=a.lr)
    print(f"## IV.1 seed ensemble: tiny_cnn, {a.epochs} epochs, lr {a.lr}, all {seeds.n_eval} test images\n")
    print(md(seeds.members[["member", "source", "loss", "metric"]]))
    print(f"\nmean member {seeds.mean_member_metric:.4f} · ensemble {seeds.metric:.4f} · "
          f"improvement {seeds.improvement:+.4f}\n")
    print(md(seeds.gains))

    ckpt = ensemble(s, "checkpoints", n=min(a.n, a.epochs), run=seeds.run_ids[0])
    print(f"\n## IV.3 checkpoint ensemble of run 1 (last {len(ckpt.members)} epochs)\n")
    print(md(ckpt.gains))

    for decay in (0.9, 0.99):
        run = s.fit(epochs=a.epochs, lr=a.lr, seed=0, ema=decay, swa=True)
        print(f"\n## IV.4 EMA (decay {decay}) and SWA vs raw weights, seed 0\n")
        print(md(averaging_curves(run)))

    d = distill(s, seeds, epochs=a.epochs, lr=a.lr, temperature=4.0, alpha=0.7, repeats=11)
    print(f"\n## IV.5 distillation of the {a.n}-seed ensemble into tiny_cnn(width=8), T=4, alpha=0.7\n")
    print(md(d.table.drop(columns=["run_id"]), floatfmt=".4g"))
    print(f"\nteacher / student inference time (median of 11 passes over the test set): {d.speedup:.1f}x")


if __name__ == "__main__":
    main()
