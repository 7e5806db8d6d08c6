"""The pictures beside the tables: speedup over eager per model and variant, as grouped bars."""
import math


def speedup_bars(path: str, speedups: dict, title: str) -> None:
    """``speedups``: model -> variant -> speedup over eager; written as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(speedups)
    variants = list(dict.fromkeys(v for row in speedups.values() for v in row))
    width = 0.8 / len(variants)
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(models) + 0.3 * len(variants), 3.6))
    for j, variant in enumerate(variants):
        xs = [i + (j - (len(variants) - 1) / 2) * width for i in range(len(models))]
        ys = [speedups[m].get(variant, math.nan) for m in models]
        bars = ax.bar(xs, ys, width, label=variant)
        for bar, y in zip(bars, ys):
            if not math.isnan(y):
                ax.annotate(f"{y:.2f}", (bar.get_x() + bar.get_width() / 2, y), ha="center",
                            va="bottom", fontsize=7)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(models)), models)
    ax.set_ylabel("speedup over eager (×)")
    ax.set_title(title, fontsize=9)
    top = max((y for row in speedups.values() for y in row.values() if not math.isnan(y)), default=1)
    ax.set_ylim(0, max(1.0, top) * 1.3)  # room for the legend above the bars
    ax.legend(fontsize=7, ncol=len(variants), loc="upper center")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
