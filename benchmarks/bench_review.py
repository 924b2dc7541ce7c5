"""The review loop of issue 18, simulated: do suggested reviews (``earmark suggest``) teach a
detector more than random ones?

* Scenes (:func:`earmark.data.scenes.make_demo_scenes`, the ``earmark demo-scenes``
  material): 2-minute recordings of spoken digits over field-like noise, target ``seven``.
  The demo digits' voices are split three ways: the training clips (``seven`` / ``other`` /
  ``noise``) speak in the first 40 voices, the *training recordings* (the pool the reviews
  are drawn from, and their held-out part for design choices) in the next 10, the *test
  recordings* in the last 10: no clip is heard on two sides.
* The learner, the same for every arm: logistic regression on the hand-crafted statistics
  (``Classifier("logreg", features="handcrafted")``, 1-s clips), cheap enough for hundreds of
  retrains on 2 cores. Every window's features are computed once, by the detection scoring
  itself (:meth:`earmark.predict.Predictor.score_track`, its model input captured), and each
  retrained model scores them again (the cached scores are checked against a live
  ``score_track``: ``cache_check`` in the JSON); training goes through the real path, a
  manifest of the reviewed windows read from the recordings (features cached per window).
* A simulated reviewer answers from the truth table: a window is ``seven`` or ``other``
  when a digit covers half of the shorter of window and digit (the annotation tables' 50 %
  rule; the digit with the larger overlap wins), else ``noise``.
* Each arm starts from 10 labelled training clips (4 seven, 3 other, 3 noise, drawn by the
  seed), then 5 rounds of 20 reviews; after each round the model is retrained on the clips
  and every reviewed window (written each round as the annotation table ``file,start_s,
  end_s,label`` that ``earmark train`` reads, ``earmark reviews export``'s format) and
  scored: event F1 of ``seven`` (onset tolerance 0.5 s, threshold 0.5, ``other`` and
  ``noise`` as background) on the evaluation recordings. Arms: ``suggested`` (``earmark
  suggest``'s picks), ``random`` (20 windows drawn at random among those not yet reviewed);
  every arm runs for each seed (the initial clips and the random draws change with it) and
  reports the mean. ``supervised``: the clips and every window of the training recordings
  labelled.
* Design choices (uncertainty measure, diversity rule, embedding) are compared on the
  held-out training recordings (``select``: suggestions from the other training
  recordings, F1 on the held-out ones); the best mean F1 over the five rounds is then run
  on the test recordings. Bar (issue 18): ``suggested`` beats ``random`` at every round and
  reaches the ``supervised`` event F1 within 100 reviews.

Measured (5 seeds, 2 shared cores, 13 minutes): the held-out recordings chose ``entropy`` /
``kmeans`` / ``features`` (mean F1 over the rounds 0.76; random 0.48; uncertainty without
diversity 0.61-0.63). On the test recordings, event F1 after 0 / 20 / 40 / 60 / 80 / 100
reviews: suggested 0.16 / 0.56 / 0.68 / 0.68 / 0.69 / 0.70, random 0.16 / 0.38 / 0.48 /
0.58 / 0.62 / 0.64; supervised (956 windows labelled) 0.68, reached after 40 suggested
reviews. On the held-out recordings (the pool's voices) supervised reaches 0.89 and the
suggested arm 0.88 after 100 reviews: the test recordings' lower ceiling is their unseen
voices, which more labels of the pool's voices do not teach this learner.

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_review.py [--digits out/demo/digits]
[--work out/demo/bench-review] [--seeds 5]   (writes benchmarks/results/review.json)
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import write

import earmark
from earmark.audio import AudioConfig
from earmark.data import Manifest
from earmark.detection.events import EventRules, find_events
from earmark.detection.truth import read_truth, score_events
from earmark.detection.windows import Windowing
from earmark.predict import ScoreTrack
from earmark.review.suggest import SuggestSettings, suggest, suggest_tracks

TARGET = "seven"
CLASSES = ("noise", "other", "seven")
INITIAL = {"seven": 4, "other": 3, "noise": 3}
ROUNDS, PER_ROUND = 5, 20
WINDOW = Windowing()  # suggest's and detect's default: the clip length, half-overlapping
RULES = EventRules(background=("noise", "other"))
VOICES = {"train": range(0, 40), "pool": range(40, 50), "test": range(50, 60)}
#: The design choices compared on the held-out training recordings.
VARIANTS = [
    {"uncertainty": u, "diversity": d, "embedding": "features"}
    for u, d in itertools.product(("margin", "entropy"), ("kcenter", "kmeans", "none"))
] + [{"uncertainty": "margin", "diversity": "kcenter", "embedding": "scores"}]


# -- scenes -------------------------------------------------------------------------------------


def build_scenes(digits: Path, work: Path, rebuild: bool) -> dict[str, Any]:
    """Training recordings (6: 4 to draw reviews from, 2 held out) and test recordings (4),
    from disjoint voices; the training clips from a third set of voices."""
    from earmark.data.scenes import make_demo_scenes

    table = pd.read_csv(digits / "manifest.csv")
    voices = sorted(set(table["group"]))
    if len(voices) < 60:
        raise SystemExit(f"{digits}: the demo digits with 60 voices are needed (earmark demo)")
    stamp = work / "scenes.json"
    settings = {"digits": str(digits.resolve()), "version": 1}
    out = {"pool": work / "scenes-pool", "test": work / "scenes-test"}
    if rebuild or not stamp.exists() or json.loads(stamp.read_text()) != settings:
        stamp.unlink(missing_ok=True)
        for split, n_recordings, seed in (("pool", 6, 1), ("test", 4, 2)):
            keep = {voices[i] for i in (*VOICES["train"], *VOICES[split])}
            sub = table[table["group"].isin(keep)].copy()
            sub["filepath"] = [str((digits / p).resolve()) for p in sub["filepath"]]
            folder = work / f"digits-{split}"
            folder.mkdir(parents=True, exist_ok=True)
            sub.to_csv(folder / "manifest.csv", index=False)
            make_demo_scenes(
                out[split], folder, n_recordings=n_recordings, holdout_voices=10, seed=seed
            )
        stamp.write_text(json.dumps(settings))
    recs = {s: sorted(str(p.resolve()) for p in (out[s] / "recordings").glob("*.wav")) for s in out}
    return {
        "draw": recs["pool"][:4],
        "held": recs["pool"][4:],
        "test": recs["test"],
        "truth": {s: read_truth(out[s] / "truth.csv") for s in out},
        "clips": out["pool"] / "train",
    }


def reviewer(truth: list) -> Any:
    """The simulated reviewer: the label of a window from the truth table (module doc)."""
    by_file: dict[str, list] = {}
    for ev in truth:
        by_file.setdefault(Path(ev.file).name, []).append(ev)

    def label(file: str, start: float, end: float) -> str:
        best, best_overlap = "noise", 0.0
        for ev in by_file.get(Path(file).name, []):
            overlap = min(end, ev.end) - max(start, ev.start)
            if overlap >= 0.5 * min(end - start, ev.end - ev.start) and overlap > best_overlap:
                best, best_overlap = (TARGET if ev.label == TARGET else "other"), overlap
        return best

    return label


# -- the learner and its cached window features -------------------------------------------------


def new_classifier(cache: Path) -> earmark.Classifier:
    audio = AudioConfig(sample_rate=16_000, duration=1.0, crop="center", pad="both")
    return earmark.Classifier(
        "logreg", features="handcrafted", audio=audio, cache_dir=cache, workers=1, seed=0
    )


def initial_clips(clips: Path, seed: int) -> pd.DataFrame:
    table = pd.read_csv(clips / "manifest.csv")
    parts = [table[table["label"] == c].sample(k, random_state=seed) for c, k in INITIAL.items()]
    frame = pd.concat(parts)[["filepath", "label"]].reset_index(drop=True)
    frame["filepath"] = [str((clips / p).resolve()) for p in frame["filepath"]]
    return frame


def fit(cache: Path, clips: pd.DataFrame, table: Path | None) -> earmark.Classifier:
    """Train on the initial clips and the reviewed windows of ``table`` (read back as the
    annotation table it is: segment rows cut from the recordings on the fly)."""
    frame = clips
    if table is not None:
        reviewed = earmark.data.load(table).frame[["filepath", "start_s", "end_s", "label"]]
        frame = pd.concat([clips, reviewed], ignore_index=True)
    return new_classifier(cache).fit(Manifest(frame.reset_index(drop=True)))


class Windows:
    """Each recording's windows (starts, duration) and model input, captured once from the
    detection scoring of a fitted model (hand-crafted features do not depend on the fit)."""

    def __init__(self, model: earmark.Classifier, paths: list[str], store: Path) -> None:
        self.data: dict[str, dict[str, Any]] = {}
        if store.exists():
            saved = np.load(store, allow_pickle=False)
            if sorted(saved["paths"].tolist()) == sorted(paths):
                for k, p in enumerate(saved["paths"].tolist()):
                    self.data[p] = {
                        "X": saved[f"X{k}"],
                        "starts": saved[f"s{k}"],
                        "duration": float(saved[f"d{k}"]),
                        "window": float(saved["window"]),
                        "hop": float(saved["hop"]),
                    }
                return
        predictor = copy.copy(model.predictor)
        inner, batches = predictor.score, []

        def capture(X: Any) -> np.ndarray:
            batches.append(np.asarray(X, dtype=np.float32))
            return inner(X)

        predictor.score = capture
        arrays: dict[str, Any] = {"paths": np.asarray(paths)}
        for k, p in enumerate(paths):
            batches.clear()
            track = predictor.score_track(p, WINDOW)
            X = np.concatenate(batches)
            self.data[p] = {
                "X": X,
                "starts": track.starts,
                "duration": track.duration,
                "window": track.window,
                "hop": track.hop,
            }
            arrays |= {f"X{k}": X, f"s{k}": track.starts, f"d{k}": track.duration}
            arrays |= {"window": track.window, "hop": track.hop}
            print(f"  windows of {Path(p).name}: {len(X)}", flush=True)
        np.savez(store, **arrays)

    def track(self, model: earmark.Classifier, path: str) -> ScoreTrack:
        d = self.data[path]
        scores = model.estimator_.predict_proba(d["X"]).astype(np.float32)
        return ScoreTrack(
            path, list(model.classes_), d["starts"], d["window"], d["hop"], scores, d["duration"]
        )


def event_f1(model, windows: Windows, paths: list[str], truth: list) -> float:
    found = [ev for p in paths for ev in find_events(windows.track(model, p), RULES)]
    names = {Path(p).name for p in paths}
    ref = [ev for ev in truth if Path(ev.file).name in names]
    return float(score_events(found, ref, labels=[TARGET], files=paths).per_class[TARGET]["f1"])


# -- one arm ------------------------------------------------------------------------------------


def run_arm(
    arm: str,
    seed: int,
    *,
    scenes: dict[str, Any],
    windows: Windows,
    evaluate_on: list[str],
    truth: list,
    label: Any,
    work: Path,
    variant: dict[str, str] | None = None,
    first: tuple[earmark.Classifier, float] | None = None,
) -> list[float]:
    """Event F1 after 0..ROUNDS rounds of reviews for one arm and seed."""
    cache = work / "cache"
    clips = initial_clips(scenes["clips"], seed)
    model, f1 = first if first is not None else (None, None)
    if model is None:
        model = fit(cache, clips, None)
        f1 = event_f1(model, windows, evaluate_on, truth)
    curve = [f1]
    reviewed: list[dict[str, Any]] = []
    rng = np.random.default_rng(1000 + seed)
    pool = scenes["draw"]
    table = work / "tables" / f"{arm}-{seed}.csv"
    table.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(ROUNDS):
        if arm == "random":
            done = {(r["file"], round(r["start_s"], 4)) for r in reviewed}
            cands = [
                (p, float(s))
                for p in pool
                for s in windows.data[p]["starts"]
                if (p, round(float(s), 4)) not in done
            ]
            chosen = [cands[i] for i in rng.choice(len(cands), PER_ROUND, replace=False)]
            picks = [
                (p, s, min(s + windows.data[p]["window"], windows.data[p]["duration"]))
                for p, s in chosen
            ]
        else:
            settings = SuggestSettings(n=PER_ROUND, seed=seed, **(variant or {}))
            tracks = [(windows.track(model, p), windows.data[p]["X"]) for p in pool]
            spans = [(r["file"], r["start_s"], r["end_s"]) for r in reviewed]
            got = suggest_tracks(tracks, settings, reviewed=spans)
            picks = [(s.file, s.start_s, s.end_s) for s in got.items]
        for p, s, e in picks:
            reviewed.append({"file": p, "start_s": s, "end_s": e, "label": label(p, s, e)})
        pd.DataFrame(reviewed).to_csv(table, index=False)  # the annotation table of the reviews
        model = fit(cache, clips, table)
        curve.append(event_f1(model, windows, evaluate_on, truth))
    return curve


def supervised(scenes, windows, evaluate_on, truth, label, work, seeds) -> list[float]:
    """Event F1 with every window of the reviews' recordings labelled (per seed's clips)."""
    rows = [
        {"file": p, "start_s": float(s), "end_s": min(float(s) + d["window"], d["duration"])}
        for p in scenes["draw"]
        for d in [windows.data[p]]
        for s in d["starts"]
    ]
    for r in rows:
        r["label"] = label(r["file"], r["start_s"], r["end_s"])
    table = work / "tables" / "supervised.csv"
    table.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(table, index=False)
    out = []
    for seed in seeds:
        model = fit(work / "cache", initial_clips(scenes["clips"], seed), table)
        out.append(event_f1(model, windows, evaluate_on, truth))
    return out


def mean_curve(curves: list[list[float]]) -> list[float]:
    return [round(float(v), 4) for v in np.mean(np.asarray(curves), axis=0)]


def compare(scenes, windows, evaluate_on, truth, label, work, seeds, variants) -> dict[str, Any]:
    """Every arm on ``evaluate_on``: the curves per seed and their means."""
    out: dict[str, Any] = {}
    firsts = {}
    for seed in seeds:
        model = fit(work / "cache", initial_clips(scenes["clips"], seed), None)
        firsts[seed] = (model, event_f1(model, windows, evaluate_on, truth))
    common = {
        "scenes": scenes,
        "windows": windows,
        "evaluate_on": evaluate_on,
        "truth": truth,
        "label": label,
        "work": work,
    }
    arms = [("random", None)] + [(name_of(v), v) for v in variants]
    for name, variant in arms:
        t0 = time.perf_counter()
        curves = [
            run_arm(
                "random" if variant is None else "suggested",
                seed,
                variant=variant,
                first=firsts[seed],
                **common,
            )
            for seed in seeds
        ]
        out[name] = {
            "variant": variant,
            "per_seed": [[round(v, 4) for v in c] for c in curves],
            "mean": mean_curve(curves),
            "mean_over_rounds": round(float(np.mean(np.asarray(curves)[:, 1:])), 4),
            "wall_s": round(time.perf_counter() - t0, 1),
        }
        print(f"  {name:32s} {out[name]['mean']}", flush=True)
    return out


def name_of(variant: dict[str, str]) -> str:
    return f"{variant['uncertainty']}/{variant['diversity']}/{variant['embedding']}"


def cache_check(scenes, windows: Windows, work: Path) -> dict[str, Any]:
    """The cached scores against a live detection scoring and a live ``suggest`` (seed 0's
    first model, one training recording): the benchmark measures what the CLI does."""
    model = fit(work / "cache", initial_clips(scenes["clips"], 0), None)
    path = scenes["draw"][0]
    live = model.score_track(path, WINDOW)
    cached = windows.track(model, path)
    settings = SuggestSettings(n=PER_ROUND)
    live_picks = suggest(model, path, settings).items
    cached_picks = suggest_tracks([(cached, windows.data[path]["X"])], settings).items
    same = [(s.start_s, s.label) for s in live_picks] == [
        (s.start_s, s.label) for s in cached_picks
    ]
    return {
        "max_score_difference": float(np.abs(live.scores - cached.scores).max()),
        "same_windows": bool(np.allclose(live.starts, cached.starts)),
        "same_suggestions": same,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--digits", type=Path, default=Path("out/demo/digits"))
    parser.add_argument("--work", type=Path, default=Path("out/demo/bench-review"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true", help="Rebuild the scenes.")
    parser.add_argument(
        "--variant",
        default=None,
        help="Skip the selection: uncertainty/diversity/embedding to run on the test recordings.",
    )
    args = parser.parse_args()
    if not (args.digits / "manifest.csv").exists():
        from earmark.data.demo import make_demo_digits

        make_demo_digits(args.digits)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    seeds = list(range(args.seeds))
    scenes = build_scenes(args.digits, work, args.rebuild)
    first = fit(work / "cache", initial_clips(scenes["clips"], 0), None)
    print("window features (once)", flush=True)
    windows = Windows(first, scenes["draw"] + scenes["held"] + scenes["test"], work / "windows.npz")
    results: dict[str, Any] = {
        "settings": {
            "learner": "logreg on handcrafted features, 1-s clips",
            "initial_clips": INITIAL,
            "rounds": ROUNDS,
            "per_round": PER_ROUND,
            "seeds": seeds,
            "windowing": WINDOW.to_dict() | {"window_s": windows.data[scenes["draw"][0]]["window"]},
            "event_rules": RULES.to_dict(),
            "recordings": {k: len(scenes[k]) for k in ("draw", "held", "test")},
            "pool_windows": sum(len(windows.data[p]["starts"]) for p in scenes["draw"]),
        },
        "cache_check": cache_check(scenes, windows, work),
    }
    print("cache check", results["cache_check"], flush=True)
    pool_truth = scenes["truth"]["pool"]
    test_truth = scenes["truth"]["test"]
    label = reviewer(pool_truth)
    if args.variant:
        u, d, e = args.variant.split("/")
        chosen = {"uncertainty": u, "diversity": d, "embedding": e}
    else:
        print("selection on the held-out training recordings", flush=True)
        select = compare(scenes, windows, scenes["held"], pool_truth, label, work, seeds, VARIANTS)
        select["supervised"] = {
            "per_seed": supervised(scenes, windows, scenes["held"], pool_truth, label, work, seeds)
        }
        results["select"] = select
        best = max(
            (k for k in select if k not in ("random", "supervised")),
            key=lambda k: select[k]["mean_over_rounds"],
        )
        chosen = select[best]["variant"]
    results["chosen"] = chosen
    print(f"test recordings, {name_of(chosen)} against random", flush=True)
    test = compare(scenes, windows, scenes["test"], test_truth, label, work, seeds, [chosen])
    sup = supervised(scenes, windows, scenes["test"], test_truth, label, work, seeds)
    test["supervised"] = {
        "per_seed": [round(v, 4) for v in sup],
        "mean": round(float(np.mean(sup)), 4),
    }
    results["test"] = test
    sug, rnd = test[name_of(chosen)]["mean"], test["random"]["mean"]
    full = test["supervised"]["mean"]
    results["bar_met"] = {
        "beats_random_every_round": all(s > r for s, r in zip(sug[1:], rnd[1:], strict=True)),
        "reaches_supervised_within_100": max(sug[1:]) >= full,
        "reviews_to_reach_supervised": next(
            (PER_ROUND * k for k, v in enumerate(sug) if k and v >= full), None
        ),
    }
    results["wall_s"] = round(time.perf_counter() - t_start, 1)
    print()
    print(f"event F1 of {TARGET} on the test recordings (mean of {len(seeds)} seeds)")
    print(f"{'reviews':>8s} {'suggested':>10s} {'random':>10s}")
    for k in range(ROUNDS + 1):
        print(f"{PER_ROUND * k:8d} {sug[k]:10.3f} {rnd[k]:10.3f}")
    print(f"supervised (every window of the training recordings labelled): {full:.3f}")
    write("review", results)


if __name__ == "__main__":
    main()
