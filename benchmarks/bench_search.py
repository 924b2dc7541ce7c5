"""Similarity search: which ANN library, and what an earmark index costs and gives.

Two parts, both written to ``benchmarks/results/bench_search.json``:

1. ``--compare``: the three candidate libraries (usearch, faiss-cpu, hnswlib), each an HNSW
   graph of the same parameters (M / connectivity 16, 128 candidates while building, 64
   while searching, cosine distance on L2-normalised vectors), with the vector encodings each
   offers (f32; f16 and i8 where the library stores them), on the same vectors:

   - ``demo``: the aisfx embeddings of the demo digits and scene recordings (``--data``),
   - ``synthetic``: ``--synthetic N`` 512-d vectors shaped like aisfx embeddings: a mixture
     of clusters whose spread lies in a low-dimensional subspace with the demo embeddings'
     measured spectrum (how many principal components carry 90% of their variance), since
     isotropic Gaussian vectors have no neighbourhood structure for any ANN to find.

   For each: build time, index size on disk, extra memory (RSS) while building and after
   loading the saved index in a fresh process, single-query latency for k=10 (p50 and p99,
   one thread: what a server answers per request), recall@10 against exact search (numpy,
   float32) on held-out queries. Each build and each load runs in its own process so memory
   figures do not mix. Libraries that are not installed are reported as such; to compare
   all three without changing earmark's environment, install them into a folder and put it
   on the path: ``pip install --target /tmp/annlibs usearch faiss-cpu hnswlib`` then
   ``PYTHONPATH=/tmp/annlibs``.

2. ``--index`` (the bar): ``earmark.review.index`` builds the index of the demo digits and
   scene recordings with aisfx (``--hop``), then measures recall@10 of its ANN search
   against its exact search over every window of the scene recordings as a query, and the
   latency of a query by vector and of a query by clip (embedding included); then projects
   the size of a 1,000-hour index from the bytes per window measured.

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_search.py --compare --index
        [--data out/demo] [--synthetic 200000] [--queries 500]
Figures taken on a machine shared with other work are noisy (latency most of all).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import write

HERE = Path(__file__).parent
M, EF_ADD, EF_SEARCH, K = 16, 128, 64, 10
#: (library, encoding) pairs compared; an encoding a library lacks is not listed.
VARIANTS = [
    ("usearch", "f32"),
    ("usearch", "f16"),
    ("usearch", "i8"),
    ("faiss", "f32"),
    ("faiss", "f16"),
    ("faiss", "i8"),
    ("hnswlib", "f32"),
]
PACKAGES = {"usearch": "usearch", "faiss": "faiss-cpu", "hnswlib": "hnswlib"}


def rss_mb() -> float:
    """This process's resident memory now (MB; Linux)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    """This process's peak resident memory (MB; Linux ``VmHWM``: unlike ``ru_maxrss``, not
    inherited from the parent that started it)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# --- the three libraries, behind one tiny interface (benchmark only) ----------------------


def build(lib: str, enc: str, x: np.ndarray, path: Path) -> None:
    n, d = x.shape
    if lib == "usearch":
        from usearch.index import Index

        index = Index(
            ndim=d,
            metric="cos",
            dtype=enc,
            connectivity=M,
            expansion_add=EF_ADD,
            expansion_search=EF_SEARCH,
        )
        for i in range(0, n, 50_000):
            index.add(np.arange(i, min(n, i + 50_000)), np.asarray(x[i : i + 50_000]))
        index.save(str(path))
    elif lib == "faiss":
        import faiss

        if enc == "f32":
            index = faiss.IndexHNSWFlat(d, M, faiss.METRIC_INNER_PRODUCT)
        else:
            qtype = {"f16": faiss.ScalarQuantizer.QT_fp16, "i8": faiss.ScalarQuantizer.QT_8bit}
            index = faiss.IndexHNSWSQ(d, qtype[enc], M, faiss.METRIC_INNER_PRODUCT)
            index.train(np.asarray(x[: min(n, 100_000)]))
        index.hnsw.efConstruction = EF_ADD
        for i in range(0, n, 50_000):
            index.add(np.ascontiguousarray(x[i : i + 50_000]))
        faiss.write_index(index, str(path))
    else:
        import hnswlib

        index = hnswlib.Index(space="cosine", dim=d)
        index.init_index(max_elements=n, ef_construction=EF_ADD, M=M)
        for i in range(0, n, 50_000):
            index.add_items(np.asarray(x[i : i + 50_000]), np.arange(i, min(n, i + 50_000)))
        index.save_index(str(path))


def load(lib: str, path: Path, d: int) -> Any:
    """The saved index, and a function ``search(q [d]) -> ids [K]``."""
    if lib == "usearch":
        from usearch.index import Index

        index = Index.restore(str(path), view=True)  # memory-mapped
        index.expansion_search = EF_SEARCH
        return index, lambda q: index.search(q, K, threads=1).keys
    if lib == "faiss":
        import faiss

        faiss.omp_set_num_threads(1)
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        index.hnsw.efSearch = EF_SEARCH
        return index, lambda q: index.search(q[None], K)[1][0]
    import hnswlib

    index = hnswlib.Index(space="cosine", dim=d)
    index.load_index(str(path))
    index.set_ef(EF_SEARCH)
    index.set_num_threads(1)
    return index, lambda q: index.knn_query(q, k=K)[0][0]


def child(args: argparse.Namespace) -> None:
    """One phase in a fresh process: ``build`` or ``query``; prints one JSON line."""
    x = np.load(args.vectors, mmap_mode="r")
    path = Path(args.path)
    if args.child == "build":
        base = rss_mb()
        t0 = time.perf_counter()
        build(args.lib, args.enc, x, path)
        out = {
            "build_s": time.perf_counter() - t0,
            "build_extra_mb": peak_mb() - base,
            "size_mb": path.stat().st_size / 2**20,
        }
    else:
        queries = np.load(args.queries_file)
        truth = np.load(args.truth)
        gc.collect()
        base = rss_mb()
        t0 = time.perf_counter()
        _index, search = load(args.lib, path, x.shape[1])
        load_s = time.perf_counter() - t0
        times, hits = [], 0
        for q, t in zip(queries, truth, strict=True):
            t1 = time.perf_counter()
            ids = search(q)
            times.append(time.perf_counter() - t1)
            hits += len(set(np.asarray(ids).tolist()) & set(t.tolist()))
        out = {
            "load_s": load_s,
            "loaded_extra_mb": rss_mb() - base,
            "query_p50_ms": 1000 * float(np.percentile(times, 50)),
            "query_p99_ms": 1000 * float(np.percentile(times, 99)),
            "recall_at_10": hits / (K * len(queries)),
        }
    print(json.dumps(out))


def exact_top(x: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    """The exact k nearest rows of ``x`` (cosine; rows are unit vectors) for each query."""
    best = np.zeros((len(queries), k), dtype=np.int64)
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    for i in range(0, len(x), 100_000):
        part = np.asarray(x[i : i + 100_000], dtype=np.float32)
        sims = queries @ part.T
        cand = np.concatenate([scores, sims], axis=1)
        ids = np.concatenate([best, np.arange(i, i + len(part))[None].repeat(len(queries), 0)], 1)
        top = np.argsort(-cand, axis=1)[:, :k]
        scores = np.take_along_axis(cand, top, 1)
        best = np.take_along_axis(ids, top, 1)
    return best


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def components_90(x: np.ndarray) -> int:
    """How many principal components carry 90% of the variance of ``x``."""
    s = np.linalg.svd(x - x.mean(0), compute_uv=False) ** 2
    return int(np.searchsorted(np.cumsum(s) / s.sum(), 0.9) + 1)


def synthetic(n: int, dim: int, rank: int, seed: int = 0) -> np.ndarray:
    """``n`` unit vectors in clusters of ~200 whose spread lies in a ``rank``-dimensional
    subspace (plus a little isotropic noise), built in chunks (float32)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 200), dim)).astype(np.float32)
    basis = rng.standard_normal((rank, dim)).astype(np.float32) / np.sqrt(rank)
    out = np.empty((n, dim), dtype=np.float32)
    for i in range(0, n, 50_000):
        m = min(n, i + 50_000) - i
        c = centres[rng.integers(0, len(centres), m)]
        spread = rng.standard_normal((m, rank)).astype(np.float32) @ basis
        noise = 0.1 * rng.standard_normal((m, dim)).astype(np.float32)
        out[i : i + m] = unit(c + 1.5 * spread + noise)
    return out


def installed(lib: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(lib) is not None


def compare(
    name: str, x: np.ndarray, queries: np.ndarray, work: Path, variants: list[str]
) -> dict[str, Any]:
    """Every variant on vectors ``x`` (unit rows) with held-out ``queries``."""
    vec, qs, tr = work / f"{name}.npy", work / f"{name}-q.npy", work / f"{name}-t.npy"
    np.save(vec, x)
    np.save(qs, queries)
    np.save(tr, exact_top(x, queries))
    rows: dict[str, Any] = {"vectors": len(x), "dim": x.shape[1], "queries": len(queries)}
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    for lib, enc in VARIANTS:
        key = f"{lib}-{enc}"
        if key not in variants:
            continue
        if not installed(lib):
            rows[key] = {"skipped": f"{PACKAGES[lib]} is not installed"}
            continue
        path = work / f"{name}-{key}.index"
        common = [sys.executable, __file__, "--lib", lib, "--enc", enc, "--vectors", str(vec)]
        row: dict[str, Any] = {}
        for phase in ("build", "query"):
            cmd = [*common, "--child", phase, "--path", str(path)]
            cmd += ["--queries-file", str(qs), "--truth", str(tr)]
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if done.returncode:
                row = {"error": done.stderr.strip().splitlines()[-1:]}
                break
            row.update(json.loads(done.stdout.strip().splitlines()[-1]))
        rows[key] = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
        print(name, key, rows[key], flush=True)
        path.unlink(missing_ok=True)
    return rows


def demo_vectors(data: Path, work: Path, table: Path | None) -> np.ndarray:
    """The aisfx embeddings of the demo digits and scene recordings: from ``table`` (what
    ``earmark embed DIGITS RECORDINGS --out T.parquet`` wrote) or embedded here once."""
    from earmark.features import pretrained

    if table is not None:
        return pretrained.Embeddings.load(table).vectors
    cache = work / "demo-aisfx.npy"
    if not cache.exists():
        table = pretrained.embed_files(
            [data / "digits", data / "scenes" / "recordings"], "aisfx", device="cpu"
        )
        np.save(cache, table.vectors)
    return np.load(cache)


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for lib, package in PACKAGES.items():
        try:
            out[lib] = version(package)
        except PackageNotFoundError:
            out[lib] = "not installed"
    return out


def bench_index(data: Path, hop: float | None, work: Path) -> dict[str, Any]:
    """The bar: earmark's own index of the demo, its recall against its exact search and its
    query times; a 1,000-hour projection from the measured bytes per window."""
    from earmark.review.index import build_index, open_index

    out_dir = work / "demo-index"
    t0 = time.perf_counter()
    build_index([data / "digits", data / "scenes" / "recordings"], out_dir, hop=hop, overwrite=True)
    build_s = time.perf_counter() - t0
    index = open_index(out_dir)
    scenes = [i for i, f in enumerate(index.windows["file"]) if "recordings" in f]
    vectors = index.vectors(scenes)
    hits, found_self, ann_ms, exact_ms = 0, 0, [], []
    for row, v in zip(scenes, vectors, strict=True):
        t1 = time.perf_counter()
        approx = index.search_vector(v, k=K)
        ann_ms.append(1000 * (time.perf_counter() - t1))
        t1 = time.perf_counter()
        exact = index.search_vector(v, k=K, exact=True)
        exact_ms.append(1000 * (time.perf_counter() - t1))
        found_self += row in approx.rows
        hits += len(set(approx.rows) & set(exact.rows))
    # a query as a user makes one: a short clip (the shortest indexed file, one window)
    lengths = {}
    for f, end in zip(index.windows["file"], index.windows["end_s"], strict=True):
        lengths[f] = max(lengths.get(f, 0.0), float(end))
    query_clip = Path(min(lengths, key=lengths.get))
    index.search_file(query_clip, k=K)  # warm-up
    clip_ms = []
    for _ in range(3):
        t1 = time.perf_counter()
        index.search_file(query_clip, k=K)
        clip_ms.append(1000 * (time.perf_counter() - t1))
    sizes = {p.name: p.stat().st_size for p in out_dir.iterdir() if p.is_file()}
    rows = len(index)
    per_window = sum(sizes.values()) / rows
    hop_s = index.settings["hop_s"]
    windows_per_hour = 3600 / hop_s
    return {
        "windows": rows,
        "hop_s": hop_s,
        "build_s": round(build_s, 1),
        "queries": len(scenes),
        "recall_at_10": hits / (K * len(scenes)),
        "window_finds_itself": found_self / len(scenes),
        "ann_query_p50_ms": round(float(np.median(ann_ms)), 3),
        "exact_query_p50_ms": round(float(np.median(exact_ms)), 3),
        "clip_query_ms": round(min(clip_ms), 1),
        "clip_seconds": round(lengths[str(query_clip)], 2),
        "bytes_on_disk": sizes,
        "bytes_per_window": round(per_window, 1),
        "projection_1000h": {
            "windows": round(1000 * windows_per_hour),
            "gb_on_disk": round(1000 * windows_per_hour * per_window / 1e9, 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--compare", action="store_true", help="compare the ANN libraries")
    parser.add_argument("--index", action="store_true", help="earmark's index of the demo")
    parser.add_argument("--data", type=Path, default=Path("out/demo"))
    parser.add_argument("--synthetic", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--hop", type=float, default=None)
    parser.add_argument("--demo-table", type=Path, default=None, help="`earmark embed` output")
    parser.add_argument(
        "--variants",
        default=",".join(f"{lib}-{enc}" for lib, enc in VARIANTS),
        help="library-encoding pairs to compare on the demo vectors",
    )
    parser.add_argument(
        "--synthetic-variants",
        default=None,
        help="the pairs to compare on the synthetic set (default: --variants)",
    )
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: tmp)")
    # a child process's phase (internal)
    parser.add_argument("--child", choices=["build", "query"], help=argparse.SUPPRESS)
    for name in ("--lib", "--enc", "--vectors", "--path", "--queries-file", "--truth"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    if args.child:
        child(args)
        return
    if not (args.compare or args.index):
        parser.error("give --compare, --index or both")
    work = args.work or Path(tempfile.mkdtemp(prefix="earmark-bench-search-"))
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"libraries": library_versions()}
    if args.compare:
        params = {"M": M, "ef_construction": EF_ADD, "ef_search": EF_SEARCH, "k": K}
        demo = unit(demo_vectors(args.data, work, args.demo_table))
        variants = args.variants.split(",")
        synth_variants = (args.synthetic_variants or args.variants).split(",")
        rng = np.random.default_rng(1)
        order = rng.permutation(len(demo))
        nq = min(args.queries, len(demo) // 5)
        rank = components_90(demo)
        synth = synthetic(args.synthetic + args.queries, demo.shape[1], rank)
        result["compare"] = {
            "hnsw": params,
            "demo_components_90pct": rank,
            "demo": compare("demo", demo[order[nq:]], demo[order[:nq]], work, variants),
            "synthetic": compare(
                "synthetic", synth[args.queries :], synth[: args.queries], work, synth_variants
            ),
        }
    if args.index:
        result["index"] = bench_index(args.data, args.hop, work)
    write("bench_search", result)


if __name__ == "__main__":
    main()
