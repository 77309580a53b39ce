"""Image-graphics search measured: `python -m vantage.train.retrieval_bench --model BUNDLE`.

Prints three tables and writes OUT/retrieval_bench.json:

1. hnswlib against exact numpy search on the same descriptors (real embeddings of
   rendered views; the 100k set adds noisy copies of them, see `augment`): build
   time, recall@1/@10, single-thread queries per second, memory.
2. Pose on renders of unseen real CAD models (leave-models-out with
   `meshes.hold_out`): network only, nearest view, the paper's 2-NN camera average,
   the SO(3) rotation average of agreeing neighbours, the fused estimate, and the
   dense-SIFT spatial-pyramid baseline; MedErr, Acc@π/6, camera-position error, and
   the category of the best retrieved model (cat-acc on unseen models).
3. 3D-model retrieval on renders of indexed models under new viewpoints and
   backgrounds: top-1 / top-5 model accuracy ("best view" and "vote" ranking) per
   descriptor, with the SIFT baseline.
"""

from __future__ import annotations

import os

# Single-threaded numpy for the brute-force timings, and no BLAS threads left spinning
# beside ONNX Runtime (MEASURED.md). Must precede the first numpy import.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, Sequence  # noqa: E402

import numpy as np  # noqa: E402

from vantage.categories import CATEGORIES  # noqa: E402
from vantage.geometry import geodesic_distance, rotation_to_camera_position, vector_angle  # noqa: E402
from vantage.imaging import crop_square  # noqa: E402
from vantage.serve.engine import Predictor  # noqa: E402
from vantage.serve.retrieval import (  # noqa: E402
    BundleIdentity,
    POSE_K,
    HnswParams,
    Projection,
    ViewHit,
    ViewIndex,
    camera_average_pose,
    fused_pose,
    knn_pose,
    new_graph,
    rank_models,
)
from vantage.train.indexing import IndexConfig, RenderPlan, embed, render_models  # noqa: E402
from vantage.train.meshes import ModelSpec, hold_out, scan_repository  # noqa: E402
from vantage.train.metrics import pose_report  # noqa: E402
from vantage.train.render import RenderConfig  # noqa: E402
from vantage.train.sift_baseline import DenseSiftPyramid, intersection_nearest  # noqa: E402

DEFAULT_CAD = Path(__file__).resolve().parents[2] / "shared" / "data" / "pascal3d_cad"
SIFT_SIZE = 128
POOL = 50  # neighbours fetched per query (models are ranked from these)


@dataclass
class Views:
    """Embedded renders: raw embeddings, metadata rows, the network's answers, grey crops for SIFT."""

    embeddings: np.ndarray
    rows: list[dict[str, Any]]
    net_rotation: np.ndarray
    net_category: list[str]
    grey: np.ndarray

    @property
    def rotation(self) -> np.ndarray:
        return np.array([r["rotation"] for r in self.rows], np.float64).reshape(-1, 3, 3)

    @property
    def category(self) -> list[str]:
        return [r["category"] for r in self.rows]


def collect(predictor: Predictor, specs: Sequence[ModelSpec], plan: RenderPlan, workers: int, first_number: int,
            cache: Path | None) -> Views:
    """Render and embed the views of `specs` (read from / written to `cache` when given)."""
    key = json.dumps([predictor.backend, str(predictor.model_path), [s.model_id for s in specs], repr(plan),
                      first_number])
    if cache is not None and cache.is_file():
        with np.load(cache) as data:
            if str(data["key"]) == key:
                return Views(data["embeddings"], json.loads(str(data["rows"])), data["net_rotation"],
                             json.loads(str(data["net_category"])), data["grey"])
    from tqdm import tqdm

    emb, rows, rot, cats, grey = [], [], [], [], []
    margin = float(predictor.metadata.crop_margin)
    for model in tqdm(render_models(specs, plan, workers, first_number), total=len(specs), unit="model",
                      desc=cache.stem if cache else "render"):
        if not model.rows:
            continue
        e, results = embed(predictor, model)
        emb.append(e)
        rows += model.rows
        rot += [r.rotation for r in results]
        cats += [r.category for r in results]
        grey += [crop_square(i, b, SIFT_SIZE, margin).mean(-1).astype(np.uint8) for i, b in zip(model.images, model.boxes)]
    views = Views(np.concatenate(emb), rows, np.asarray(rot, np.float64), cats, np.stack(grey))
    if cache is not None:
        np.savez(cache, key=key, embeddings=views.embeddings, rows=json.dumps(rows), net_rotation=views.net_rotation,
                 net_category=json.dumps(cats), grey=views.grey)
    return views


# -- 1. hnswlib against brute force ---------------------------------------------------


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact k nearest labels by inner product (batched numpy), best first."""
    out = np.empty((len(queries), k), np.int64)
    for s in range(0, len(queries), 256):
        scores = queries[s:s + 256] @ base.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1)
        out[s:s + 256] = np.take_along_axis(part, order, 1)
    return out


def augment(real: np.ndarray, total: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, float]]:
    """`real` unit vectors plus noisy copies up to `total`: each copy is a random real vector with
    Gaussian noise scaled so that its cosine to the source equals the median cosine between
    a real vector and its nearest other real vector (the local density of real data)."""
    sample = real[rng.permutation(len(real))[:2000]]
    scores = sample @ real.T
    nn_cos = float(np.median(np.sort(scores, axis=1)[:, -2]))  # [-1] is the vector itself
    d = real.shape[1]
    sigma = float(np.sqrt((1.0 / nn_cos**2 - 1.0) / d))
    src = rng.integers(0, len(real), total - len(real))
    noisy = real[src] + rng.normal(0.0, sigma, (len(src), d)).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    return np.concatenate([real, noisy]), {"real": len(real), "noisy_copies": len(src), "sigma": sigma,
                                           "median_nn_cosine_of_real": nn_cos}


def ann_row(base: np.ndarray, queries: np.ndarray, params: HnswParams, efs: Sequence[int], threads: int) -> dict:
    """Build time, recall@1/@10, single-thread qps and memory of hnswlib vs brute force on `base`."""
    truth = exact_topk(base, queries, 10)
    t0 = time.perf_counter()
    graph = new_graph(base.shape[1], len(base), params)
    graph.add_items(base, np.arange(len(base)), num_threads=threads)
    build_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    for q in queries:
        exact_topk(base, q[None], 10)
    brute_qps = len(queries) / (time.perf_counter() - t0)
    row: dict[str, Any] = {"n": len(base), "dim": base.shape[1], "build_s": build_s, "build_threads": threads,
                           "hnsw_bytes": int(graph.index_file_size()), "brute_bytes": int(base.nbytes),
                           "brute_qps": brute_qps, "ef": []}
    for ef in efs:
        graph.set_ef(max(ef, 10))
        labels = np.empty((len(queries), 10), np.int64)
        t0 = time.perf_counter()
        for i, q in enumerate(queries):
            labels[i] = graph.knn_query(q[None], k=10, num_threads=1)[0][0]
        qps = len(queries) / (time.perf_counter() - t0)
        recall10 = np.mean([len(set(a) & set(b)) / 10.0 for a, b in zip(labels, truth)])
        row["ef"].append({"ef": ef, "recall_at_1": float(np.mean(labels[:, 0] == truth[:, 0])),
                          "recall_at_10": float(recall10), "qps": qps, "speedup": qps / brute_qps})
    return row


# -- 2./3. pose and model retrieval ---------------------------------------------------


def pose_row(name: str, pred: np.ndarray, queries: Views, pred_cat: Sequence[str]) -> dict:
    report = pose_report(pred, queries.rotation, pred_cat, queries.category, CATEGORIES)
    cam_err = vector_angle(rotation_to_camera_position(pred), rotation_to_camera_position(queries.rotation))
    return {"method": name, **{k: report["overall"][k] for k in ("count", "med_err", "acc_pi6", "cat_acc")},
            "mean_cats_med_err": report["mean_over_categories"]["med_err"],
            "mean_cats_acc_pi6": report["mean_over_categories"]["acc_pi6"],
            "cam_err_median": float(np.median(cam_err))}


def search_all(index: ViewIndex, queries: Views, category: bool = False) -> list[list[ViewHit]]:
    return [index.search(e, POOL, c if category else None) for e, c in zip(queries.embeddings, queries.category)]


def rotations(hits: list[list[ViewHit]], estimate: Callable[[list[ViewHit]], np.ndarray]) -> np.ndarray:
    return np.stack([estimate(h) for h in hits])


def pose_table(index: ViewIndex, queries: Views, sift_nn: np.ndarray | None, index_views: Views) -> tuple[list, dict]:
    """Rows of table 2 (library defaults: k = POSE_K, 30° agreement), and sweeps of k, agreement
    threshold and fusion parameters around them."""
    hits = search_all(index, queries)
    top_cat = [rank_models(h)[0].category for h in hits]
    net = queries.net_rotation

    def fused(*params: float) -> np.ndarray:
        return np.stack([fused_pose(n, h, *params).rotation for n, h in zip(net, hits)])

    rows = [
        pose_row("network only", net, queries, queries.net_category),
        pose_row("nearest view (k=1)", rotations(hits, lambda h: h[0].rotation), queries, top_cat),
        pose_row("paper: 2-NN camera average", rotations(hits, lambda h: camera_average_pose(h, 2).rotation),
                 queries, top_cat),
        pose_row(f"k-NN SO(3) average (k={POSE_K})", rotations(hits, lambda h: knn_pose(h).rotation), queries,
                 top_cat),
        pose_row("fused network + k-NN", fused(), queries, queries.net_category),
    ]
    hits_cat = search_all(index, queries, category=True)
    rows.append(pose_row("k-NN SO(3), category given", rotations(hits_cat, lambda h: knn_pose(h).rotation),
                         queries, queries.category))
    if sift_nn is not None:
        rows.append(pose_row("dense-SIFT pyramid NN (paper baseline)", index_views.rotation[sift_nn], queries,
                             [index_views.category[i] for i in sift_nn]))

    def med(pred: np.ndarray) -> dict[str, float]:
        err = geodesic_distance(pred, queries.rotation)
        return {"med_err": float(np.median(err)), "acc_pi6": float(np.mean(err < 30.0))}

    sweeps: dict[str, Any] = {"knn": [], "fused": []}
    for k in (2, 5, 10, 20, 50):
        for agree in (15.0, 30.0, 45.0):
            sweeps["knn"].append({"k": k, "agree_deg": agree,
                                  **med(rotations(hits, lambda h: knn_pose(h, k, agree).rotation))})
    for k in (10, 20, 50):
        for agree in (20.0, 30.0, 45.0):
            for weight in (0.25, 0.5, 0.75):
                for support in (0.5, 0.7, 1.01):
                    sweeps["fused"].append({"k": k, "agree_deg": agree, "network_weight": weight,
                                            "min_support": support, **med(fused(k, agree, weight, support))})
    return rows, sweeps


def model_row(name: str, index: ViewIndex, queries: Views) -> dict:
    """Top-1/top-5 model accuracy of known-model queries under both rankings."""
    hits = search_all(index, queries)
    truth = [r["model_id"] for r in queries.rows]
    out: dict[str, Any] = {"descriptor": name, "dim": index.projection.dim}
    for method in ("best", "vote"):
        ranked = [[m.model_id for m in rank_models(h, method)] for h in hits]
        out[f"{method}_top1"] = float(np.mean([r[:1] == [t] for r, t in zip(ranked, truth)]))
        out[f"{method}_top5"] = float(np.mean([t in r[:5] for r, t in zip(ranked, truth)]))
    out["category_acc"] = float(np.mean([rank_models(h)[0].category == c for h, c in zip(hits, queries.category)]))
    return out


def build_view_index(identity: BundleIdentity, views: Views, projection: Projection, params: HnswParams) -> ViewIndex:
    index = ViewIndex.create(projection, identity, params, capacity=len(views.rows))
    index.add(views.embeddings, views.rows)
    return index


# -- main ------------------------------------------------------------------------------


def _fmt_ann(rows: list[dict]) -> str:
    head = f"{'set':<34} {'build s':>8} {'MB':>7} {'ef':>4} {'R@1':>6} {'R@10':>6} {'qps':>8} {'brute qps':>9} {'×':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        for e in r["ef"]:
            lines.append(f"{r['label']:<34} {r['build_s']:>8.1f} {r['hnsw_bytes'] / 2**20:>7.1f} {e['ef']:>4} "
                         f"{e['recall_at_1']:>6.3f} {e['recall_at_10']:>6.3f} {e['qps']:>8.0f} "
                         f"{r['brute_qps']:>9.0f} {e['speedup']:>6.1f}")
    return "\n".join(lines)


def _fmt_pose(rows: list[dict]) -> str:
    head = (f"{'method':<40} {'n':>4} {'MedErr°':>8} {'Acc@π/6':>8} {'mean-cat MedErr':>15} "
            f"{'cam err°':>8} {'cat-acc':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['method']:<40} {r['count']:>4} {r['med_err']:>8.1f} {r['acc_pi6']:>8.3f} "
                     f"{r['mean_cats_med_err']:>15.1f} {r['cam_err_median']:>8.1f} {r['cat_acc']:>8.3f}")
    return "\n".join(lines)


def _fmt_models(rows: list[dict]) -> str:
    head = f"{'descriptor':<22} {'best top-1':>10} {'best top-5':>10} {'vote top-1':>10} {'vote top-5':>10} {'cat-acc':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = [f"{r[k]:>10.3f}" if k in r else f"{'-':>10}" for k in ("best_top1", "best_top5", "vote_top1", "vote_top5")]
        lines.append(f"{r['descriptor']:<22} {' '.join(cells)} {r['category_acc']:>8.3f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="bundle folder (e.g. the one `vantage quickstart` writes)")
    p.add_argument("--cad", default=str(DEFAULT_CAD), help="repository of real CAD models DIR/<category>/*.off")
    p.add_argument("--out", default="runs/retrieval_bench")
    p.add_argument("--held-out", type=int, default=1, help="unseen CAD models per category")
    p.add_argument("--subdivisions", type=int, default=2)
    p.add_argument("--backgrounds", type=int, default=2)
    p.add_argument("--pca", type=int, nargs="+", default=[256, 128], help="PCA dimensions to compare (first = index)")
    p.add_argument("--known-views", type=int, default=10, help="query views per indexed model")
    p.add_argument("--unseen-views", type=int, default=30, help="query views per unseen model")
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="ANN benchmark set sizes")
    p.add_argument("--efs", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    p.add_argument("--M", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--workers", type=int, default=1, help="render processes")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime and hnswlib build threads")
    p.add_argument("--no-sift", action="store_true", help="skip the dense-SIFT baseline")
    args = p.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t_start = time.perf_counter()
    predictor = Predictor(args.model, intra_op_threads=args.threads)
    identity = BundleIdentity.of(args.model, predictor.metadata)
    indexed, unseen = hold_out(scan_repository(args.cad), args.held_out)
    cfg = IndexConfig(subdivisions=args.subdivisions, backgrounds=args.backgrounds)
    index_views = collect(predictor, indexed, RenderPlan(cfg.render_config(), None, cfg.tilts, cfg.backgrounds),
                          args.workers, 0, out / "views_index.npz")
    # queries: new random viewpoints (θ ~ N(0, 8°)), backgrounds, lights and distances; other seeds
    known_q = collect(predictor, indexed, RenderPlan(RenderConfig(seed=101), args.known_views), args.workers, 0,
                      out / "views_known.npz")
    unseen_q = collect(predictor, unseen, RenderPlan(RenderConfig(seed=202), args.unseen_views), args.workers, 0,
                       out / "views_unseen.npz")
    render_s = time.perf_counter() - t_start
    params = HnswParams(M=args.M, ef_construction=args.ef_construction)

    projections = {f"pca-{d}": Projection.fit_pca(index_views.embeddings, d) for d in args.pca}
    projections[f"raw-{identity.embedding_dim}"] = Projection(identity.embedding_dim)
    main_name = f"pca-{args.pca[0]}"
    indexes = {name: build_view_index(identity, index_views, proj, params) for name, proj in projections.items()}

    # 1. ANN: real descriptors of index views; queries = real descriptors of all query renders
    proj = projections[main_name]
    real = proj(index_views.embeddings)
    queries = proj(np.concatenate([known_q.embeddings, unseen_q.embeddings]))
    ann, augmentation = [], None
    for size in args.sizes:
        if size <= len(real):
            base = real[rng.permutation(len(real))[:size]]
            label = f"{size:,} real, {main_name}"
        else:
            base, augmentation = augment(real, size, rng)
            label = f"{size:,} ({len(real):,} real+noisy), {main_name}"
        ann.append({"label": label, **ann_row(base, queries, params, args.efs, args.threads)})
    raw_name = f"raw-{identity.embedding_dim}"
    raw = projections[raw_name](index_views.embeddings)
    size = min(args.sizes[0], len(raw))
    ann.append({"label": f"{size:,} real, {raw_name}",
                **ann_row(raw[rng.permutation(len(raw))[:size]],
                          projections[raw_name](np.concatenate([known_q.embeddings, unseen_q.embeddings])),
                          params, args.efs, args.threads)})

    # 2./3. pose on unseen models, model retrieval on known ones, SIFT baseline
    sift_unseen = sift_known = None
    if not args.no_sift:
        sift = DenseSiftPyramid().fit(index_views.grey[rng.permutation(len(index_views.grey))[:1500]])
        ref = sift.histograms(index_views.grey)
        sift_unseen = intersection_nearest(sift.histograms(unseen_q.grey), ref)
        sift_known = intersection_nearest(sift.histograms(known_q.grey), ref)
    pose_rows, sweeps = pose_table(indexes[main_name], unseen_q, sift_unseen, index_views)
    known_pose_rows, known_sweeps = pose_table(indexes[main_name], known_q, sift_known, index_views)
    model_rows = [model_row(name, idx, known_q) for name, idx in indexes.items()]
    if sift_known is not None:
        truth = [r["model_id"] for r in known_q.rows]
        model_rows.append({"descriptor": "dense-SIFT pyramid NN", "dim": int(ref.shape[1]),
                           "best_top1": float(np.mean([index_views.rows[i]["model_id"] == t
                                                       for i, t in zip(sift_known, truth)])),
                           "category_acc": float(np.mean([index_views.category[i] == c
                                                          for i, c in zip(sift_known, known_q.category)]))})
    unseen_cat = {name: float(np.mean([rank_models(h)[0].category == c
                                       for h, c in zip(search_all(idx, unseen_q), unseen_q.category)]))
                  for name, idx in indexes.items()}
    unseen_cat["network"] = float(np.mean(np.array(unseen_q.net_category) == np.array(unseen_q.category)))

    result = {
        "bundle": identity.describe(), "cad": args.cad,
        "indexed_models": len(indexed), "unseen_models": [s.model_id for s in unseen],
        "index_views": len(index_views.rows), "known_queries": len(known_q.rows), "unseen_queries": len(unseen_q.rows),
        "index_config": cfg.to_dict(), "hnsw": {"M": params.M, "ef_construction": params.ef_construction},
        "descriptors": {n: p.describe() for n, p in projections.items()},
        "ann": ann, "augmentation": augmentation, "pose_unseen": pose_rows, "sweeps_unseen": sweeps,
        "pose_known": known_pose_rows, "sweeps_known": known_sweeps,
        "models_known": model_rows, "category_acc_unseen": unseen_cat,
        "render_embed_s": render_s, "total_s": time.perf_counter() - t_start,
    }
    (out / "retrieval_bench.json").write_text(json.dumps(result, indent=2) + "\n")

    print(f"\n{identity.describe()}; {len(indexed)} indexed CAD models ({len(index_views.rows)} views), "
          f"{len(unseen)} unseen")
    print("\n1. hnswlib vs exact brute force (single-thread queries, k = 10)")
    if augmentation:
        print(f"   largest set: {augmentation['real']} real descriptors + {augmentation['noisy_copies']} noisy copies "
              f"(Gaussian σ={augmentation['sigma']:.4f}/dim, cosine to source = median real NN cosine "
              f"{augmentation['median_nn_cosine_of_real']:.3f}); queries are real renders")
    print(_fmt_ann(ann))
    print(f"\n2. Pose on renders of unseen CAD models ({len(unseen_q.rows)} queries, index {main_name}; "
          "cat-acc: network's category for network/fused rows, best model's otherwise)")
    print(_fmt_pose(pose_rows))
    print(f"\n2b. Pose on renders of the indexed CAD models under new viewpoints and backgrounds "
          f"({len(known_q.rows)} queries)")
    print(_fmt_pose(known_pose_rows))
    for name, sweep in (("unseen", sweeps), ("indexed", known_sweeps)):
        best = {kind: min(sweep[kind], key=lambda r: r["med_err"]) for kind in ("knn", "fused")}
        print(f"   sweep, {name} models: best k-NN {best['knn']}; best fused {best['fused']}")
    print("\n3. 3D-model retrieval, indexed models under new viewpoints and backgrounds "
          f"({len(known_q.rows)} queries)")
    print(_fmt_models(model_rows))
    print("   category accuracy on unseen models (best retrieved model's category): "
          + ", ".join(f"{k} {v:.3f}" for k, v in unseen_cat.items()))
    print(f"\nwrote {out / 'retrieval_bench.json'} ({result['total_s']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
