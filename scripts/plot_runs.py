#!/usr/bin/python3
"""Loss curves and sink-mass heatmaps of sinklab runs, side by side, in one PNG; optionally their sinks' anatomy.

    scripts/plot_runs.py RUN_OR_SUITE_DIR... [-o out.png] [--smooth N] [--position P] [--maps maps.png]

Left: train loss against tokens (trailing mean over N logged steps, as `sinklab compare --smooth N`), one line
per variant with a band of mean +- sd over its seeds; validation loss dashed. Right: one heatmap per variant of
the attention mass on key position P (default 0, the first token) per layer and step, mean over heads and seeds.
--maps: a second figure, one row per variant, from each run's last logged rows, mean over seeds: the std over
channels of the W_O input at each of the first positions, one line per layer (/sink/wo_input_std: the variance
discrepancy of position 0), and the head-averaged attention among the first 64 positions of up to six layers
(/heavy/attn_map, written every metrics.heavy_every steps), on a log scale. Positions an intervention changes (an
isolated or amplified row) are left out of the std lines and marked, as compare's ratios leave them out.
Runs group by variant: the run folder name without its -s<seed> suffix. A suite folder (runs/<suite>) stands for
its run folders, in the order of its sweep.yaml. Files of runs still training are read as they are (HDF5 SWMR).
`sinklab compare --plot FILE --maps FILE` calls this script; it needs Debian's python3-h5py and python3-matplotlib.
"""
import argparse
import json
import os
import re
import sys
import warnings

try:
    import h5py
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError as err:
    sys.exit(f"plot_runs.py: {err.name} is missing for {sys.executable}; "
             "apt install python3-h5py python3-matplotlib python3-numpy")
try:
    import yaml
except ImportError:  # only needed for the order of a suite's variants and the maps' intervened positions
    yaml = None

RUN_NAME = re.compile(r"(.+)-s([0-9]+)$")


def split_run_name(name):
    """("headnorm", 2) for "headnorm-s2"; (name, None) for a name without a seed suffix."""
    m = RUN_NAME.fullmatch(name)
    return (m.group(1), int(m.group(2))) if m else (name, None)


def suite_order(folder):
    """The suite's variant order from its sweep.yaml; {} (name order) when there is none or it is not a suite's."""
    path = os.path.join(folder, "sweep.yaml")
    if yaml is None or not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            doc = yaml.load(f, Loader=yaml.BaseLoader)  # every scalar a string, as the names are folder names
    except (OSError, yaml.YAMLError):
        return {}
    variants = doc.get("variants") if isinstance(doc, dict) else None
    if not isinstance(variants, list) or not all(isinstance(v, str) for v in variants):
        return {}
    return {v: i for i, v in enumerate(variants)}


def find_runs(args):
    runs = []
    for arg in args:
        if os.path.isfile(arg) and os.path.basename(arg) == "metrics.h5":
            found = [os.path.dirname(arg) or "."]
        elif os.path.isfile(os.path.join(arg, "metrics.h5")):
            found = [arg]
        elif os.path.isdir(arg):
            order = suite_order(arg)
            keys = []
            for entry in os.listdir(arg):
                if entry.startswith("."):  # what compare skips too: a run set aside, a lock
                    continue
                run = os.path.join(arg, entry)
                if os.path.isfile(os.path.join(run, "metrics.h5")):
                    variant, seed = split_run_name(entry)
                    keys.append((order.get(variant, len(order)), variant, seed or 0, run))
            found = [k[-1] for k in sorted(keys)]
            if not found:
                sys.exit(f"plot_runs.py: {arg} holds no run (no metrics.h5 in it or its subfolders)")
        else:
            sys.exit(f"plot_runs.py: {arg}: not a run folder, a suite folder or a metrics.h5 file")
        runs += [os.path.normpath(r) for r in found if os.path.normpath(r) not in runs]
    return runs


def group_names(runs):
    """Each run's group: its variant, or, when one run name occurs in several folders (a suite before and after a
    change), the shortest end of its folder's path that tells the folders apart and the variant, as sinklab compare
    names them ("runs/s/baseline", "runs-new/s/baseline"), so that their seeds are never pooled."""
    names = [os.path.basename(r) for r in runs]
    variants = [split_run_name(n)[0] for n in names]
    if len(set(names)) == len(names):
        return variants
    parts = [os.path.dirname(os.path.abspath(r)).strip(os.sep).split(os.sep)[::-1] for r in runs]
    for k in range(1, max(len(p) for p in parts) + 1):
        folders = [os.path.join(*reversed(p[:k])) for p in parts]
        if all(len({tuple(p) for f2, p in zip(folders, parts) if f2 == f}) == 1 for f in folders):
            break
    return [f"{f}/{v}" for f, v in zip(folders, variants)]


def complete_rows(g, columns):
    """The number of complete rows of a group, those before the first unwritten step (-1) and at most the shortest
    column (a writer killed mid-flush may leave both), and its step column."""
    step = g["step"][...]
    n = min([len(step)] + [g[c].shape[0] for c in columns])
    unwritten = np.nonzero(step[:n] < 0)[0]
    return (int(unwritten[0]) if len(unwritten) else n), step


def read_group(f, group, columns):
    """The complete rows of a group."""
    if group not in f:
        return None
    n, _ = complete_rows(f[group], columns)
    return {c: f[group][c][:n] for c in ["step"] + columns}


def last_row(f, group, column):
    """(step, value) of a group's last complete row, reading that row alone; None without one."""
    if group not in f:
        return None
    n, step = complete_rows(f[group], [c for c in f[group] if c != "step"])
    return (int(step[n - 1]), f[group][column][n - 1]) if n else None


def tracked_positions(f):
    """The key positions of /sink/attn_mass's columns, in order (0 first, then metrics.positions without repeats,
    then the interventions' positions): the file's sink_positions attribute, not the config's list."""
    text = f.attrs.get("sink_positions")
    if isinstance(text, bytes):
        text = text.decode()
    try:
        return [int(p) for p in json.loads(text)]
    except (TypeError, ValueError):
        sys.exit(f"plot_runs.py: {f.filename}: its sink_positions attribute {text!r} is no list of positions; "
                 "the file is damaged or was not written by sinklab train")


def intervened_positions(f):
    """The positions the run's interventions change (intervention.isolate, then amplify.position), from the file's
    config_yaml attribute, as compare takes them; [] without one, or without python3-yaml."""
    text = f.attrs.get("config_yaml")
    if isinstance(text, bytes):
        text = text.decode()
    if yaml is None or not text:
        return []
    try:
        iv = (yaml.safe_load(text) or {}).get("intervention") or {}
        amplified = int((iv.get("amplify") or {}).get("position", -1))
        return [int(p) for p in iv.get("isolate") or []] + ([amplified] if amplified >= 0 else [])
    except (yaml.YAMLError, AttributeError, TypeError, ValueError) as err:
        sys.exit(f"plot_runs.py: {f.filename}: its config_yaml attribute names no intervention positions ({err}); "
                 "the file is damaged or was not written by sinklab train")


def read_run(run_dir, position, maps=False, curves=True):
    """A run's curves (unless curves is false: every row of /sink/attn_mass is much to read for the maps alone); with
    maps also its last /sink/wo_input_std [L, Tp] and /heavy/attn_map [L, 64, 64] rows as (step, value), None where it
    has none."""
    with h5py.File(os.path.join(run_dir, "metrics.h5"), "r", swmr=True) as f:
        train, val, sink = ((read_group(f, "train", ["tokens", "loss"]), read_group(f, "val", ["loss"]),
                             read_group(f, "sink", ["attn_mass"])) if curves else (None, None, None))
        positions = tracked_positions(f)
        intervened = intervened_positions(f)
        wo_std = last_row(f, "sink", "wo_input_std") if maps else None
        attn_map = last_row(f, "heavy", "attn_map") if maps else None
    mass = None
    if sink is not None and len(sink["step"]) and position in positions:
        mass = sink["attn_mass"][:, :, :, positions.index(position)].mean(axis=2)  # [n, L]: mean over heads
    name = os.path.basename(os.path.normpath(run_dir))
    return {"name": name, "train": train, "val": val, "sink_step": None if sink is None else sink["step"],
            "mass": mass, "tracked": position in positions, "wo_std": wo_std, "attn_map": attn_map,
            "intervened": intervened}


def trailing_mean(v, n):
    """Mean of the last n values at each step, as compare's: non-finite losses count in no window, NaN at their own."""
    a = np.asarray(v, dtype=np.float64)
    ok = np.isfinite(a)
    c = np.cumsum(np.insert(np.where(ok, a, 0.0), 0, 0.0))
    k = np.cumsum(np.insert(ok.astype(np.int64), 0, 0))
    i = np.arange(1, len(a) + 1)
    lo = np.maximum(i - n, 0)
    count = k[i] - k[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, (c[i] - c[lo]) / np.maximum(count, 1), np.nan)


def band(curves):
    """Mean and sd (ddof 1; 0 for one seed) over seeds, on the rows every seed has."""
    n = min(len(c) for c in curves)
    stack = np.stack([c[:n] for c in curves])
    sd = stack.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros(n)
    return stack.mean(axis=0), sd, n


def plot(groups, out, smooth, position):
    names = list(groups)
    ncol = min(len(names), 3)
    nrow = (len(names) + ncol - 1) // ncol
    fig = plt.figure(figsize=(6.0 + 3.0 * ncol, max(3.8, 2.7 * nrow)), layout="constrained")
    grid = fig.add_gridspec(nrow, 1 + ncol, width_ratios=[2.0] + [1.0] * ncol)
    ax = fig.add_subplot(grid[:, 0])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    tops = []
    for i, name in enumerate(names):
        runs = [r for r in groups[name] if r["train"] is not None and len(r["train"]["step"])]
        if not runs:
            continue
        color = colors[i % len(colors)]
        mean, sd, n = band([trailing_mean(r["train"]["loss"], smooth) for r in runs])
        tokens = runs[0]["train"]["tokens"][:n]
        ax.plot(tokens, mean, color=color, lw=1.4, label=f"{name} ({len(runs)} seed{'s' * (len(runs) > 1)})")
        ax.fill_between(tokens, mean - sd, mean + sd, color=color, alpha=0.25, lw=0)
        top = mean[min(n - 1, n // 10)]
        if np.isfinite(top):  # a diverged run's curve is NaN there, and gives no scale
            tops.append(top)
        vals = [r for r in runs if r["val"] is not None and len(r["val"]["step"])]
        if vals:
            vmean, _, vn = band([r["val"]["loss"] for r in vals])
            per_step = tokens[-1] / runs[0]["train"]["step"][n - 1]
            ax.plot(vals[0]["val"]["step"][:vn] * per_step, vmean, color=color, ls="--", lw=1.0, marker=".")
    if tops:
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo, max(tops))
    ax.set_xlabel("tokens")
    ax.set_ylabel(f"train loss (mean of {smooth} steps); val dashed")
    ax.set_title("loss: mean ± sd over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)

    image = None
    heat_axes = []
    for i, name in enumerate(names):
        h = fig.add_subplot(grid[i // ncol, 1 + i % ncol])
        heat_axes.append(h)
        runs = [r for r in groups[name] if r["mass"] is not None and len(r["mass"])]
        h.set_title(name, fontsize=9)
        if not runs:
            tracked = any(r["tracked"] for r in groups[name])  # a position the runs do not track never gets rows
            h.text(0.5, 0.5, f"no /sink rows\nfor token {position} yet" if tracked else
                   f"token {position} is not\ntracked (metrics.positions)", ha="center", va="center",
                   transform=h.transAxes)
            h.set_xticks([])
            h.set_yticks([])
            continue
        n = min(len(r["mass"]) for r in runs)
        mass = np.stack([r["mass"][:n] for r in runs]).mean(axis=0)  # [n, L]: mean over seeds
        steps = runs[0]["sink_step"][:n]
        L = mass.shape[1]
        image = h.imshow(mass.T, origin="lower", aspect="auto", cmap="magma", vmin=0.0, vmax=1.0,
                         extent=[steps[0], steps[-1] if n > 1 else steps[0] + 1, -0.5, L - 0.5],
                         interpolation="nearest")
        h.set_xlabel("step", fontsize=8)
        h.set_ylabel("layer", fontsize=8)
        h.set_yticks(range(L))
        h.tick_params(labelsize=7)
    if image is not None:
        fig.colorbar(image, ax=heat_axes, shrink=0.8, label=f"attention mass on token {position}")
    fig.suptitle(f"sinklab: {', '.join(names)}", fontsize=10)
    save(fig, out)


def seed_mean(rows):
    """Mean over seeds of (step, value) rows, on the leading positions every one has (seeds logging other numbers of
    positions), leaving out a diverged seed's NaN values as compare does, and the steps' range as text; (None, "")
    without rows."""
    rows = [r for r in rows if r is not None]
    if not rows:
        return None, ""
    shape = tuple(min(r[1].shape[i] for r in rows) for i in range(rows[0][1].ndim))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice" where every seed is NaN
        mean = np.nanmean(np.stack([r[1][tuple(slice(0, k) for k in shape)] for r in rows]), axis=0)
    lo, hi = min(r[0] for r in rows), max(r[0] for r in rows)
    return mean, f"step {lo}" if lo == hi else f"steps {lo}-{hi}"


def shown_layers(L):
    """Every layer up to six; else six spread from the first to the last."""
    return list(range(L)) if L <= 6 else sorted({int(round(x)) for x in np.linspace(0, L - 1, 6)})


def without_intervened(std, intervened):
    """std [L, Tp] with NaN in the columns of the intervened positions but 0 (the position measured), and those
    positions."""
    left_out = [p for p in intervened if 0 < p < std.shape[1]]
    shown = std.copy()
    shown[:, left_out] = np.nan
    return shown, left_out


def plot_maps(groups, out):
    from matplotlib.colors import LogNorm

    names = list(groups)
    means = {n: (seed_mean([r["wo_std"] for r in groups[n]]), seed_mean([r["attn_map"] for r in groups[n]]))
             for n in names}
    # An intervened row's std is the intervention's (lambda times the others' when amplified): drawn, it would set
    # the scale and hide position 0's discrepancy, which compare's ratios also measure without it.
    intervened = {n: sorted({p for r in groups[n] for p in r["intervened"]}) for n in names}
    # Each variant its own layers (variants may differ in depth); L 1 where it has no rows yet.
    layers = {n: shown_layers(max([m[0].shape[0] for m in means[n] if m[0] is not None] + [1])) for n in names}
    ncol = max(len(v) for v in layers.values())
    fig, axes = plt.subplots(len(names), 1 + ncol, squeeze=False, layout="constrained",
                             figsize=(4.2 + 2.3 * ncol, 2.6 * len(names) + 0.6),
                             gridspec_kw={"width_ratios": [1.8] + [1.0] * ncol})
    cmap = plt.get_cmap("viridis")
    image = None
    for row, name in enumerate(names):
        (std, std_steps), (maps, map_steps) = means[name]
        ax = axes[row][0]
        if std is None or not np.isfinite(std).any():
            ax.text(0.5, 0.5, "no /sink rows yet" if std is None else "not finite (diverged)", ha="center",
                    va="center", transform=ax.transAxes)
        else:
            std, left_out = without_intervened(std, intervened[name])
            for l in range(std.shape[0]):
                ax.plot(range(std.shape[1]), std[l], color=cmap(l / max(1, std.shape[0] - 1)), lw=1.1,
                        marker="." if l in (0, std.shape[0] - 1) else None, label=f"layer {l}")
            for i, p in enumerate(left_out):
                ax.axvline(p, color="gray", ls=":", lw=1, label="intervened (left out)" if i == 0 else None)
            shown = std[np.isfinite(std)]
            if np.all(shown > 0) and shown.max() > 10 * shown.min():  # a sink's token 0 stands far above the rest
                ax.set_yscale("log")
            ax.set_xlabel("position t", fontsize=8)
            ax.legend(fontsize=6, ncol=2)
        ax.set_ylabel("std of W_O input", fontsize=8)
        ax.set_title(f"{name}: {std_steps}" if std is not None else name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        for j in range(1 + len(layers[name]), 1 + ncol):  # columns beyond this variant's layers
            axes[row][j].axis("off")
        for j, l in enumerate(layers[name]):
            h = axes[row][1 + j]
            h.set_xticks([])
            h.set_yticks([])
            if maps is None or not np.isfinite(maps[l]).any():
                h.text(0.5, 0.5, "no /heavy rows\n(metrics.heavy_every)" if maps is None else "not finite",
                       ha="center", va="center", transform=h.transAxes, fontsize=7)
            else:
                # Rows and columns past T (under 64) are padding; causal maps hold zeros above the diagonal, which
                # the floor keeps off a log scale's lower end.
                seen = np.nonzero(maps[l].sum(axis=1) > 0)[0]
                q = seen[-1] + 1 if len(seen) else maps.shape[1]
                image = h.imshow(np.maximum(maps[l][:q, :q], 1e-4), cmap="magma", norm=LogNorm(vmin=1e-4, vmax=1.0),
                                 interpolation="nearest")
                h.set_xlabel("key", fontsize=7)
                if j == 0:
                    h.set_ylabel("query", fontsize=7)
            h.set_title(f"layer {l}" + (f", {map_steps}" if j == 0 and maps is not None else ""), fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes[:, 1:].ravel().tolist(), shrink=0.8, label="attention weight")
    fig.suptitle(f"sinklab: W_O input std by position, attention maps ({', '.join(names)})", fontsize=10)
    save(fig, out)


def save(fig, out):
    # sinklab compare replaces a file only if it finds this creator in it (src/cli/compare.cpp). Saved beside it
    # and renamed over it, so that a failed write (a full disk) leaves the earlier plot whole; the temporary name
    # keeps the extension that chooses the format.
    folder, name = os.path.split(out)
    tmp = os.path.join(folder, f".{os.getpid()}.{name}")
    try:
        fig.savefig(tmp, dpi=100, metadata={"Creator": "sinklab plot_runs.py"})
        os.replace(tmp, out)
    except BaseException as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        # matplotlib's PDF writer, after a failed write, fails again closing the file (an AttributeError): the
        # write's error is the one to tell.
        if not isinstance(err, OSError) and isinstance(err.__context__, OSError):
            raise err.__context__ from None
        raise


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run folders or suite folders (runs/<suite>)")
    p.add_argument("-o", "--out", help="PNG file to write: loss curves and sink-mass heatmaps")
    p.add_argument("--smooth", type=int, default=20, help="logged steps in the trailing mean of the loss")
    p.add_argument("--position", type=int, default=0, help="key position of the heatmaps (a tracked one)")
    p.add_argument("--maps", help="also write this image: W_O input std by position and attention maps")
    a = p.parse_args()
    if a.smooth < 1:
        sys.exit("plot_runs.py: --smooth must be at least 1")
    # The outputs are checked before any work: matplotlib would add .png to a folder's name, and fail at the end on
    # a missing folder or an unknown type. These three kinds carry the creator that sinklab compare looks for.
    outputs = [(option, out) for option, out in (("-o", a.out), ("--maps", a.maps)) if out is not None]
    if not outputs:
        sys.exit("plot_runs.py: give -o FILE, --maps FILE or both")
    for option, out in outputs:
        kind = os.path.splitext(out)[1].lower()
        if os.path.isdir(out) or kind not in (".png", ".pdf", ".svg"):
            sys.exit(f"plot_runs.py: {option} {out}: give an image file whose name ends in .png, .pdf or .svg")
        if not os.path.isdir(os.path.dirname(out) or "."):
            sys.exit(f"plot_runs.py: {option} {out}: its folder does not exist")
    if len(outputs) == 2 and os.path.realpath(a.maps) == os.path.realpath(a.out):
        sys.exit(f"plot_runs.py: --maps {a.maps} is the -o file too; give it another name")
    groups = {}
    runs = find_runs(a.runs)
    for run, group in zip(runs, group_names(runs)):
        try:
            r = read_run(run, a.position, maps=a.maps is not None, curves=a.out is not None)
        except (OSError, KeyError) as err:
            sys.exit(f"plot_runs.py: {run}/metrics.h5: cannot read it ({err})")
        groups.setdefault(group, []).append(r)
    for variant, runs in groups.items():  # seeds of a variant are averaged layer by layer
        layers = {r["name"]: r["mass"].shape[1] for r in runs if r["mass"] is not None}
        for key in ("wo_std", "attn_map"):
            layers.update({f'{r["name"]} ({key})': r[key][1].shape[0] for r in runs if r[key] is not None})
        if len(set(layers.values())) > 1:
            sys.exit(f"plot_runs.py: the runs of variant {variant} differ in their number of layers ({layers}), so "
                     "they are no seeds of one variant; plot them from separate folders")
    for option, out in outputs:
        try:
            if option == "-o":
                plot(groups, out, a.smooth, a.position)
            else:
                plot_maps(groups, out)
        except OSError as err:
            sys.exit(f"plot_runs.py: {option} {out}: cannot write it ({err.strerror or err})")


if __name__ == "__main__":
    main()
