"""The report's figures as PNG or SVG bytes (matplotlib, no display)."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)
import numpy as np  # noqa: E402

FORMATS = {"png": "image/png", "svg": "image/svg+xml"}


def _bytes(figure, fmt: str) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, bbox_inches="tight", dpi=120)
    plt.close(figure)
    return buffer.getvalue()


def _bars(axis, labels, intervals, title, ylabel):
    estimates = [i["estimate"] if i["estimate"] is not None else np.nan for i in intervals]
    lower = [e - i["lower"] if i["lower"] is not None and np.isfinite(i["lower"]) else 0
             for e, i in zip(estimates, intervals, strict=True)]
    upper = [i["upper"] - e if i["upper"] is not None and np.isfinite(i["upper"]) else 0
             for e, i in zip(estimates, intervals, strict=True)]
    axis.bar(labels, estimates, yerr=[lower, upper], capsize=4, color="#4c72b0")
    axis.set_title(title)
    axis.set_ylabel(ylabel)
    axis.tick_params(axis="x", rotation=30)


def _missing(message: str, fmt: str) -> bytes:
    """A figure that says what it lacks instead of drawing empty axes."""
    figure, axis = plt.subplots(figsize=(6, 1.2))
    axis.axis("off")
    axis.text(0.5, 0.5, message[:1].upper() + message[1:], ha="center", va="center", fontsize=11, color="#555555")
    return _bytes(figure, fmt)


def figure2(report: dict, fmt: str = "png") -> bytes:
    """Time per successful tool-assisted attack (higher is better) and egregiousness (lower is
    better) per classifier, with bootstrap 95 % intervals."""
    if message := report.get("missing", {}).get("figure2"):
        return _missing(message, fmt)
    rows = report["figure2"]
    labels = [r["classifier"] for r in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    _bars(left, labels, [r["minutes_per_success"] for r in rows], "Time per successful attack", "minutes")
    _bars(right, labels, [r["egregiousness"] for r in rows], "Egregiousness of successful attacks", "mean rating")
    return _bytes(figure, fmt)


def figure3(report: dict, fmt: str = "png") -> bytes:
    """False negative rate of every classifier on every tool-assisted dataset; the diagonal (a
    dataset against the classifier it was made against) is 1 by construction and faded."""
    if message := report.get("missing", {}).get("figure3"):
        return _missing(message, fmt)
    matrix = report["figure3"]
    rows, columns = matrix["classifiers"], matrix["datasets_by_target"]
    values = np.array([[c["fnr"] if c else np.nan for c in row] for row in matrix["cells"]], dtype=float)
    figure, axis = plt.subplots(figsize=(1.6 * max(len(columns), 2) + 2, 1.0 * max(len(rows), 2) + 1.5))
    axis.imshow(values if values.size else np.zeros((1, 1)), cmap="Reds", vmin=0, vmax=1)
    for i, row in enumerate(matrix["cells"]):
        for j, cell in enumerate(row):
            if cell is None:
                continue
            faded = cell["by_construction"]
            if faded:  # 1 by construction: washed out, its numbers still legible
                axis.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, color="white", alpha=0.7))
            dark = cell["fnr"] > 0.6 and not faded
            axis.text(j, i, f"{cell['fnr']:.2f}\n[{cell['lower']:.2f}, {cell['upper']:.2f}]", ha="center",
                      va="center", fontsize=8, color="white" if dark else ("#555555" if faded else "black"),
                      fontstyle="italic" if faded else "normal")
    axis.set_xticks(range(len(columns)), [f"against {c}" for c in columns], rotation=30, ha="right")
    axis.set_yticks(range(len(rows)), rows)
    axis.set_xlabel("tool-assisted dataset (by the classifier it targeted)")
    axis.set_ylabel("classifier evaluated")
    axis.set_title("False negative rate, 95 % credible interval (Beta(1, 1) prior)")
    return _bytes(figure, fmt)


def preference_curve(sweep, chosen: float | None, lower_bound: float, min_accepted_sides: int = 0,
                     fmt: str = "png") -> bytes:
    """Estimated preference of the filtered generator against the threshold, with its interval,
    from the first threshold that accepts anything; where fewer than ``min_accepted_sides`` judged
    sides are accepted (too few to trust the interval) the band is hatched."""
    thresholds, accepted = np.asarray(sweep.thresholds), np.asarray(sweep.accepted_sides)
    start = max(0, int(np.argmax(np.asarray(sweep.acceptance) > 0)) - 1)
    shown = slice(start, None)
    figure, axis = plt.subplots(figsize=(7, 3.5))
    axis.fill_between(thresholds[shown], np.asarray(sweep.lower)[shown], np.asarray(sweep.upper)[shown], alpha=0.3,
                      label=f"{sweep.level:.0%} interval")
    axis.plot(thresholds[shown], np.asarray(sweep.preference)[shown], label="preference")
    thin = thresholds[shown][accepted[shown] < min_accepted_sides]
    if thin.size:
        axis.axvspan(thin.min(), thin.max(), color="grey", alpha=0.15, hatch="//",
                     label=f"fewer than {min_accepted_sides} accepted judged sides")
    axis.axhline(lower_bound, color="grey", linestyle="--", label=f"lower bound {lower_bound:.0%}")
    if chosen is not None:
        axis.axvline(chosen, color="black", linestyle=":", label=f"chosen {chosen:.4g}")
    axis.set_xscale("log")
    axis.set_ylim(-0.02, 1.02)
    axis.set_xlabel("threshold")
    axis.set_ylabel("preference vs unfiltered")
    axis.legend(fontsize=8)
    return _bytes(figure, fmt)
