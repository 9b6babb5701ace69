"""Know the data (recipe I.2): one call finds duplicates, leaks, corrupt inputs and labels, outliers and imbalance.

``audit(data)`` takes a Dataset, an ``(X, Y)`` pair, a dict of splits or an image folder;
``audit_session(session)`` audits a Session's splits and reports progress as session events.
Order of work: one scan of the data (scan.py), exact hashes (duplicates.py), one embedding and one
neighbour index shared by near-duplicates, outliers and the label model (embed.py), then the
cheap per-example and per-class finders. Every finder appends rows to the same issues table.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields

import numpy as np

from workbench.errors import DataError

from . import balance, corruption, duplicates, labels, outliers, properties
from .embed import embed, nearest_other, neighbours
from .findings import ISSUE_TYPES, RECIPE, Findings
from .report import AuditReport, summary_frame
from .scan import scan as scan_data
from .sources import sources_of


@dataclass
class AuditOptions:
    """Every knob of the audit with its default; each is a keyword argument of ``audit()``."""

    issues: tuple = tuple(ISSUE_TYPES)  # the issue types to look for
    near_dup_ratio: float = 0.3     # near-duplicate: closer than this x the typical distance to the k-th neighbour
    neighbours: int = 10            # k of the neighbour index (near-duplicates, outliers)
    outlier_ratio: float = 2.5      # outlier: mean neighbour distance over this x the typical one
    dark_ratio: float = 0.4         # dark: 99th-percentile brightness under this x the typical one
    bright_ratio: float = 0.4       # bright: (1 - 1st-percentile brightness) under this x the typical one
    low_info_ratio: float = 0.4     # low_information: histogram entropy under this x the typical one
    label_folds: int = 5            # folds of the label model (the session's model, or the embedding kNN)
    label_model: str = "auto"       # session audits: "auto" (the session's model by k-fold cross-validation
    #                                 when it has a finished run, else "embedding"), "session" or "embedding"
    label_cv_epochs: int = 5        # at most this many epochs per fold when the session's model is used
    pred_probs: object = None       # out-of-sample probabilities: an (N, K) array, or {split: array}
    pred_probs_source: str = "out-of-sample probabilities given by the caller"  # said in report.source
    label_filter: str = "prune_by_noise_rate"   # cleanlab's filter_by
    imbalance_ratio: float = 0.2    # rare class: fewer than this x the average class count
    shift_alpha: float = 1e-3       # split shift: chi-square p-value below this ...
    shift_min_tvd: float = 0.05     # ... and total variation distance at least this
    thumb_size: int = 16            # side of the grayscale thumbnail each example is reduced to
    embed_dim: int = 32             # PCA components of the embedding
    blur: float = 0.7               # Gaussian blur (pixels of the thumbnail) before embedding
    resize_blur: float = 1.2        # blur of the extra query that finds resized (so blurred) copies; 0: off
    value_range: tuple | None = None  # expected (min, max) of the inputs; default: recorded or estimated
    task: str | None = None         # "classification" | "regression" | "sequence"; default: from the labels
    num_classes: int | None = None  # default: largest label + 1
    chunk_size: int = 2048          # examples read at a time (bounds memory)
    previews: int = 24              # pictures kept per issue type for the HTML page and the UI
    seed: int = 0


def audit(data, labels=None, *, progress=None, **options) -> AuditReport:
    """Audit a Dataset, an ``(X, Y)`` pair, a dict ``{split: data}`` or an image folder (recipe I.2).

    ``progress(done, total, stage)`` is called as the work goes. A folder with ``train``/``test``
    subfolders is audited as those splits (so leaks between them are found).
    """
    opts = make_options(options)
    sources = sources_of(data, labels, chunk_size=opts.chunk_size, value_range=opts.value_range, task=opts.task)
    return run(sources, opts, progress)


def audit_session(session, splits=("train", "test"), *, progress=None, **options) -> AuditReport:
    """Audit a Session's splits; emits ``audit_progress`` (done, total, stage) and ``audit_done`` (report)."""
    if isinstance(splits, str):
        splits = (splits,)
    data = {}
    for name in splits:
        if name not in ("train", "val", "test"):
            raise DataError(f"audit: unknown split {name!r}; the session has train, val and test")
        ds = getattr(session, name, None)
        if ds is not None:
            data[name] = ds
    if not data:
        raise DataError(f"audit: the session has none of the splits {', '.join(splits)}")
    task = getattr(session, "task", None)
    options.setdefault("task", getattr(task, "name", task))  # a Task object or its name
    options.setdefault("num_classes", getattr(session, "num_classes", None))
    seed = getattr(session, "seed", None)
    if seed is not None:
        options.setdefault("seed", seed)

    def report_progress(done, total, stage):
        session.emit("audit_progress", done=done, total=total, stage=stage)
        if progress is not None:
            progress(done, total, stage)

    opts = make_options(options)
    if opts.pred_probs is None and opts.label_model in ("auto", "session") and "label_issue" in opts.issues \
            and opts.task in (None, "classification") and "train" in data:
        from .cross_val import session_pred_probs

        got = session_pred_probs(session, folds=opts.label_folds, max_epochs=opts.label_cv_epochs,
                                 progress=report_progress)
        if got is not None:
            opts.pred_probs, opts.pred_probs_source = got
        elif opts.label_model == "session":
            raise DataError("audit: label_model='session' needs a finished run to take its configuration from; "
                            "train one with session.fit() or use label_model='embedding'")
    sources = sources_of(data, chunk_size=opts.chunk_size, value_range=opts.value_range, task=opts.task)
    report = run(sources, opts, report_progress, label_note=_runs_note(session, opts))
    session.emit("audit_done", report=report)
    return report


def make_options(options: dict) -> AuditOptions:
    """AuditOptions from keyword arguments; unknown names and issue types are named in the error."""
    known = {f.name for f in fields(AuditOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"audit: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    opts = AuditOptions(**{k: v for k, v in options.items() if v is not None or k in ("pred_probs",)})
    if isinstance(opts.issues, str):
        opts.issues = (opts.issues,)
    if opts.label_model not in ("auto", "session", "embedding"):
        raise DataError(f"audit: label_model must be 'auto', 'session' or 'embedding', got {opts.label_model!r}")
    bad = [i for i in opts.issues if i not in ISSUE_TYPES]
    if bad:
        raise DataError(f"audit: unknown issue type(s) {', '.join(bad)}; known: {', '.join(ISSUE_TYPES)}")
    if opts.task not in (None, "classification", "regression", "sequence"):
        raise DataError(f"audit: task {opts.task!r} is not classification, regression or sequence")
    return opts


def run(sources, opts: AuditOptions, progress=None, label_note: str = "") -> AuditReport:
    """Scan once, run every requested finder, and assemble the report."""
    t0 = time.perf_counter()
    n_total = sum(s.n for s in sources)
    want = set(opts.issues)
    later = ["duplicates", "embedding", "neighbours", "finders", "labels", "report"]
    done_later = [0]

    def tick(stage):
        # The scan is the first half of the bar, the analysis stages share the second half.
        done_later[0] += 1
        if progress is not None:
            progress(n_total + n_total * done_later[0] // len(later), 2 * n_total, stage)

    scanned = scan_data(sources, opts.thumb_size,
                        progress=(lambda d, t, s: progress(d, 2 * n_total, s)) if progress else None)
    timings = {"scan": time.perf_counter() - t0}
    out, rules, skipped, meta = Findings(), {}, {}, {}
    task = opts.task or _infer_task(scanned.labels)
    num_classes = opts.num_classes
    if num_classes is None and task == "classification" and scanned.labels is not None:
        y = scanned.labels[np.isfinite(scanned.labels)]
        num_classes = int(y.max()) + 1 if len(y) and (y >= 0).all() and (y == np.round(y)).all() else None

    # corrupt inputs were found by the scan; labels are checked here (they need the task)
    usable, label_reasons = corruption.check_labels(scanned, task, num_classes)
    if "corrupt" in want:
        corruption.find_corrupt(scanned, label_reasons, out)
    rules["corrupt"] = (1.0, "cannot be read, NaN/inf, blank, out of range, odd shape, invalid label")

    t = time.perf_counter()
    rep = duplicates.exact_sets(scanned)
    if want & {"exact_duplicate", "train_test_leak"}:
        duplicates.find_exact(scanned, rep, out)
    rules["exact_duplicate"] = rules["train_test_leak"] = (1.0, "identical decoded values")
    reps = np.flatnonzero(rep == np.arange(scanned.n))
    tick("duplicates")
    timings["exact"] = time.perf_counter() - t

    need_embed = bool(want & {"near_duplicate", "outlier"}) or (
        "label_issue" in want and opts.pred_probs is None and task == "classification")
    E = H = Eb = dist = ind = blurred = None
    if need_embed and len(reps) >= 3:
        t = time.perf_counter()
        qb = opts.resize_blur if "near_duplicate" in want else 0.0
        E, H, Eb = embed(scanned.thumbs[reps], scanned.is_image, opts.embed_dim, opts.blur, opts.seed,
                         query_blur=qb)
        timings["embed"] = time.perf_counter() - t
    tick("embedding")
    if E is not None and want & {"near_duplicate", "outlier"}:
        t = time.perf_counter()
        dist, ind, index = neighbours(E, opts.neighbours, opts.seed)
        if Eb is not None and index is not None:
            blurred = nearest_other(index, Eb)
        timings["neighbours"] = time.perf_counter() - t
    tick("neighbours")

    t = time.perf_counter()
    if dist is not None and "near_duplicate" in want:
        nd = duplicates.find_near(scanned, E, H, dist, ind, reps, opts.near_dup_ratio, out, blurred)
        rules["near_duplicate"] = (0.5, f"embedding distance < {opts.near_dup_ratio:g} x typical distance to the "
                                        f"{dist.shape[1]}th neighbour ({nd['typical']:.3g})")
    if dist is not None and "outlier" in want:
        members = _members_of(rep)
        od = outliers.find_outliers(scanned, reps, dist, opts.outlier_ratio, out, members)
        rules["outlier"] = (od["threshold"], f"mean neighbour distance > {opts.outlier_ratio:g} x typical "
                                             f"({od['typical']:.3g})")
    if want & {"dark", "bright", "low_information"}:
        rules.update(properties.find_properties(scanned, out, opts.dark_ratio, opts.bright_ratio,
                                                opts.low_info_ratio))
    timings["finders"] = time.perf_counter() - t
    tick("finders")

    t = time.perf_counter()
    rules["label_issue"] = (np.nan, f"cleanlab find_label_issues(filter_by={opts.label_filter!r}) on "
                                    "out-of-sample probabilities; score = 1 - label quality")
    source = _labels(scanned, task, usable, rep, reps, E, opts, out, skipped, meta, label_note)
    timings["labels"] = time.perf_counter() - t
    tick("labels")
    table = _balance(scanned, usable, task, num_classes, opts, out, rules, skipped, meta)
    _statuses(scanned, want, E is None and len(reps) < 3, skipped)

    issues = out.frame()
    report = AuditReport(issues, summary_frame(issues, n_total, rules, skipped), table, source)
    report.suggestions = out.extra
    report.meta = {"recipe": RECIPE, "splits": {s.name: s.n for s in sources}, "task": task,
                   "num_classes": num_classes, "is_image": scanned.is_image, "label_source": source,
                   "value_range": {k: list(v) for k, v in scanned.value_ranges.items()},
                   "options": {k: v for k, v in asdict(opts).items() if k != "pred_probs"}, **meta}
    report.meta["files"] = _file_names(sources, issues)
    report.previews = _previews(scanned, issues, opts.previews)
    timings["total"] = time.perf_counter() - t0
    report.meta["seconds"] = {k: round(v, 3) for k, v in timings.items()}
    tick("report")
    return report


def _balance(scanned, usable, task, num_classes, opts, out, rules, skipped, meta):
    """Class counts per split (the returned table), rare classes and split shift, for classification."""
    if task != "classification" or not usable.any():
        for k in ("class_imbalance", "split_shift"):
            skipped[k] = "skipped: no class labels" if task == "classification" else f"skipped: {task} task"
        return None
    classes = np.union1d(np.unique(scanned.labels[usable]), np.arange(num_classes or 0))
    table = balance.class_table(scanned, usable, classes)
    if "class_imbalance" in opts.issues:
        meta["imbalance"] = balance.find_imbalance(scanned, usable, table, opts.imbalance_ratio, out)
    if "split_shift" in opts.issues:
        meta["split_shift"] = balance.find_shift(table, opts.shift_alpha, opts.shift_min_tvd, out)
    rules["class_imbalance"] = (1 - opts.imbalance_ratio, f"class count < {opts.imbalance_ratio:g} x average")
    rules["split_shift"] = (0.25, f"chi-square p < {opts.shift_alpha:g} and total variation >= "
                                  f"{opts.shift_min_tvd:g}; classes whose share moved by 25% or more")
    return table


def _statuses(scanned, want, too_few, skipped):
    """Why an issue type did not run, for the summary's status column."""
    if len(scanned.split_names) < 2:
        skipped.setdefault("split_shift", "skipped: one split")
        skipped.setdefault("train_test_leak", "skipped: one split")
    if not scanned.is_image:
        for k in ("dark", "bright", "low_information"):
            skipped[k] = "skipped: the inputs are not images"
    if too_few:
        for k in ("near_duplicate", "outlier"):
            skipped.setdefault(k, "skipped: fewer than 3 distinct usable examples")
    for k in ISSUE_TYPES:
        if k not in want:
            skipped[k] = "not requested"


def _labels(scanned, task, usable, rep, reps, E, opts, out, skipped, meta, note) -> str:
    """Run the label finder when it applies; returns the words saying where the probabilities came from."""
    if "label_issue" not in opts.issues:
        return "not requested"
    if task != "classification":
        skipped["label_issue"] = f"skipped: {task} task"
        return skipped["label_issue"]
    rows = np.flatnonzero(usable & scanned.ok)
    if opts.pred_probs is not None:
        rows, P = _given_probs(scanned, rows, opts.pred_probs)
        source = opts.pred_probs_source
    if scanned.labels is None:
        skipped["label_issue"] = "skipped: no labels"
        return skipped["label_issue"]
    if len(rows) < 10 or (E is None and opts.pred_probs is None):
        skipped["label_issue"] = "skipped: fewer than 10 usable labelled examples"
        return skipped["label_issue"]
    classes, y = np.unique(scanned.labels[rows], return_inverse=True)
    if len(classes) < 2:
        skipped["label_issue"] = "skipped: one class"
        return skipped["label_issue"]
    if opts.pred_probs is not None:
        if P.shape[1] < len(classes):
            raise DataError(f"audit: pred_probs has {P.shape[1]} columns but the labels hold {len(classes)} classes")
        P = P[:, classes.astype(int)]
        P = P / P.sum(1, keepdims=True).clip(1e-12)
    else:
        counts = np.bincount(y)
        keep = counts[y] >= 2  # a class seen once cannot be predicted out of sample
        rows, y = rows[keep], np.unique(y[keep], return_inverse=True)[1]
        classes = classes[counts >= 2]
        if len(classes) < 2:  # e.g. every class seen exactly once: nothing to predict out of sample
            skipped["label_issue"] = "skipped: fewer than two classes have two or more examples"
            return skipped["label_issue"]
        row_of = np.full(scanned.n, -1)
        row_of[reps] = np.arange(len(reps))
        P, acc, folds = labels.kfold_pred_probs(E[row_of[rep[rows]]], y, opts.label_folds, opts.seed)
        source = (f"{folds}-fold k-nearest-neighbour classifier on the audit's embeddings "
                  f"(out-of-sample accuracy {acc:.1%})")
        meta["label_model_accuracy"] = acc
        majority = np.bincount(y).max() / len(y)
        if acc < majority + 0.5 * (1 - majority):
            # A model that barely beats guessing calls every label wrong: no findings beat noise ones.
            skipped["label_issue"] = (f"skipped: the embedding model's accuracy {acc:.0%} is too close to "
                                      f"guessing ({majority:.0%}); pass pred_probs= from a trained model")
            return skipped["label_issue"]
    labels.find_label_issues(scanned, rows, y, P, classes, "the model", out, opts.label_filter)
    return source + (f"; {note}" if note else "")


def _given_probs(scanned, rows, pred_probs):
    """Rows and probabilities from an (N, K) array (all splits in order) or a {split: array} dict."""
    if isinstance(pred_probs, dict):
        parts, P = [], []
        for s, name in enumerate(scanned.split_names):
            if name in pred_probs:
                r = rows[scanned.split_id[rows] == s]
                p = np.asarray(pred_probs[name], float)
                n = int((scanned.split_id == s).sum())
                if len(p) != n:
                    raise DataError(f"audit: pred_probs[{name!r}] has {len(p)} rows, the split {n} examples")
                parts.append(r)
                P.append(p[scanned.index[r]])
        if not parts:
            raise DataError(f"audit: pred_probs names none of the splits {', '.join(scanned.split_names)}")
        return np.concatenate(parts), np.concatenate(P)
    p = np.asarray(pred_probs, float)
    if p.ndim != 2 or len(p) != scanned.n:
        raise DataError(f"audit: pred_probs must be an ({scanned.n}, K) array, got shape {p.shape}")
    return rows, p[rows]


def _runs_note(session, opts) -> str:
    if opts.pred_probs is not None:
        return ""
    try:
        n = len(session.runs())
    except Exception:  # noqa: BLE001 - a session without a run store simply has no runs
        n = 0
    # Trained runs saw the training examples, so their own predictions are not out of sample; the
    # session's model is cross-validated instead when a run finished (label_model="auto" or "session").
    return (f"the session's {n} run(s) were not used (label_model={opts.label_model!r}, or none completed); "
            "their own predictions on training examples would not be out of sample") if n else ""


def _infer_task(y) -> str:
    if y is None:
        return "classification"
    f = y[np.isfinite(y)]
    return "classification" if len(f) == 0 or (f == np.round(f)).mean() > 0.99 else "regression"


def _members_of(rep):
    order = np.argsort(rep, kind="stable")
    starts = np.searchsorted(rep[order], np.arange(len(rep)))
    ends = np.searchsorted(rep[order], np.arange(len(rep)), side="right")
    return lambda r: order[starts[r]:ends[r]]


def _file_names(sources, issues) -> dict:
    """{split: {index: file}} for the flagged examples of image-folder splits (the names a person acts on)."""
    out = {}
    for src in sources:
        files = getattr(src, "files", None)
        if files:
            idx = issues.loc[(issues["split"] == src.name) & (issues["index"] >= 0), "index"].unique()
            out[src.name] = {int(i): files[i] for i in idx}
    return out


def _previews(scanned, issues, per_issue: int) -> dict:
    """Pictures of the top examples per issue type (read again from the data, once each)."""
    out = {}
    if per_issue <= 0 or issues.empty:
        return out
    top = issues[issues["index"] >= 0].groupby("issue", sort=False).head(per_issue)
    for split, index in top[["split", "index"]].drop_duplicates().itertuples(index=False):
        try:
            a = scanned.previews[split](int(index))
        except Exception:  # noqa: BLE001 - an unreadable example simply has no picture
            a = None
        if a is not None:
            out[(split, int(index))] = a
    return out
