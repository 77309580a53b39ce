"""`vantage recipe reference`: the best model we can train on a 2-core CPU, on real CAD + built-in models.

render (CAD meshes minus a held-out set per category, plus procedural models) →
train → export the bundle → evaluate the bundle on renders of the held-out CAD
meshes over photo-like backgrounds (procedural textures, or photos with
`photos`) → OUT/recipe.json, OUT/eval/report.md. The held-out meshes are never
rendered for training, so the figures are on unseen models. Mesh files are read
from their folder and never copied.

New views of the training CAD meshes (`seen_test_views`, OUT/eval_seen) measure the same bundle on
meshes it has learnt: the gap to the held-out figures is what more training meshes could close.

With `held_out_per_category` 0 the recipe makes the bundle to ship: every mesh trains (each one
counts: one fewer per category cost 2-5° on unseen meshes) and nothing is left to evaluate on but those
new views, so OUT/recipe.json says so and points at the figures the held-out folds measured for the same recipe.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

from vantage.bundle import load_metadata, save_metadata
from vantage.calibration import ConfidenceCalibration

from vantage.train.data import AugmentConfig
from vantage.train.model import ModelConfig
from vantage.train.trainer import TrainConfig

TEST_SEED = 20_000  # render seeds of the held-out test views, never used for training
SEEN_SEED = 30_000  # render seeds of the new views of the training meshes (`seen_test_views`)
RECIPE_CALIBRATION_SOURCE = ("RecipeConfig.confidence_calibration: the reference recipe's fold 1 and 2 bundles on "
                             "renders of their held-out PASCAL3D+ CAD meshes")
RECIPE_CALIBRATION_VIEWS = 720
# Where a bundle trained on every mesh finds its expected figures: the same recipe on held-out folds.
SHIPPED_FIGURES = "expected figures: the reference recipe's held-out folds, docs/RESULTS.md"


@dataclass
class RecipeConfig:
    """Data sizes and the training configuration of the reference recipe (60 min on 2 cores)."""

    models: str
    out: str
    # Folder of the renders; None: OUT/data. Another run's folder (with `train.feature_cache` at its run folder) lets
    # a lever differ from that run in its change alone and skip its rendering and feature pass, as every lever in
    # docs/RESULTS.md did. Those renders are reused as they are, never rendered over: a folder rendered with other
    # settings is refused.
    data: str | None = None
    # What the training meshes are worth: 2 held out (29 training meshes instead of 41, 226 views each so the
    # views stay as many; 52.9 min) scored on fold 0's meshes MedErr 17.6° / Acc@π/6 0.619 / cat-acc 0.881 vs
    # 15.3° / 0.669 / 0.908, on fold 1's 23.5° / 0.556 / 0.719 vs 18.2° / 0.639 / 0.778: every mesh counts, and
    # the trend asks for about twice the meshes (7-8 per category) for the 8° target, three times for Acc@π/6 0.9;
    # but new views of the training meshes themselves score 11.6° (`seen_test_views`), so meshes are not all it takes.
    # 0: train on every mesh, evaluate nothing (the bundle to ship once the folds have measured the recipe): on
    # PASCAL3D+ 53 CAD meshes, 11,364 training views, 55.0 min alone on this 2-core machine (render 99 s, train with
    # the feature cache 3,191 s, export and calibration 11 s; peak memory 2.8 GB), inside the 60-minute budget.
    held_out_per_category: int = 1
    # Views per training CAD mesh. 320 at 20 epochs (the same steps, 41.5 min) on fold 0: MedErr 14.3° /
    # Acc@π/6 0.669 / cat-acc 0.914 vs 15.3° / 0.669 / 0.908 (symmetry-reduced 12.2° / 0.767 vs 12.9° / 0.786):
    # within one run's noise, like the augmented copies, so the views a mesh has are not what limits it.
    cad_views: int = 160
    cad_shapes: int = 1  # stretched copies per training CAD mesh (RenderConfig.shape_variants: no gain measured)
    # Hybrid meshes per category (vantage.train.hybrids: one training mesh's front or bottom joined to
    # another's back or top), `hybrid_views` views each; never made from held-out meshes. Off: 8 per category
    # (84 hybrids, 3,360 views more) on fold 0 gave MedErr 15.8° / Acc@π/6 0.672 / cat-acc 0.894 vs 15.3° / 0.669 /
    # 0.908 (symmetry-reduced 12.7° / 0.789 vs 12.9° / 0.786; half turns 0.117 vs 0.119 of the views): the tv
    # monitor better (Acc 0.733 vs 0.500), the train and the aeroplane worse (0.400 vs 0.500, 0.533 vs 0.633).
    cad_hybrids: int = 0
    hybrid_views: int = 40
    builtin_instances: int = 8
    builtin_views: int = 30
    # Share of training views that cast their shadow on a ground plane (RenderConfig.ground_prob);
    # the held-out test views never do, so the figures stay comparable across recipes. Off: on
    # fold 2, 0.5 gave MedErr 21.0° / Acc@π/6 0.550 / cat-acc 0.803 on the clean held-out views vs
    # 21.5° / 0.556 / 0.797 (symmetry-reduced Acc 0.750 vs 0.772), and on the same views each
    # casting a shadow 22.7° / 0.531 / 0.817 vs 34.3° / 0.492 / 0.808 (symmetry-reduced 13.8° /
    # 0.747 vs 14.5° / 0.717): a small robustness gain, smaller than occlusion's, none on clean views.
    ground_prob: float = 0.0
    # Elevations (degrees) of the training views; the held-out test views keep RenderConfig's
    # (-20, 60). The bundle pulls elevations to the middle (its views within π/6 from -20-0° are
    # answered 7.4° too high, from 40-60° 6.3° too low: RESULTS.md), but training from (-35, 75)
    # only halved that pull and spread the views thinner: fold 0 MedErr 18.3° / Acc@π/6 0.622 /
    # cat-acc 0.894 vs 15.3° / 0.669 / 0.908 (symmetry-reduced 14.0° / 0.756 vs 12.9° / 0.786).
    train_elevation_range: tuple[float, float] = (-20.0, 60.0)
    # Camera roll of the training views, the standard deviation of theta (degrees; RenderConfig.theta_std_deg);
    # the held-out test views keep RenderConfig's 8°. 20° on fold 0 (43.1 min): MedErr 19.2° / Acc@π/6 0.619 /
    # cat-acc 0.889 vs 15.3° / 0.669 / 0.908 (symmetry-reduced 15.1° / 0.728 vs 12.9° / 0.786), and on the same
    # views rolled by up to ±30° / ±45° (`vantage off-axis --max-angle 0 --max-roll R`: a phone held askew) 22.6° /
    # 0.597 and 30.3° / 0.497 vs 23.6° / 0.589 and 34.6° / 0.464: a little robustness for a clear loss upright.
    # A request's gravity levels the crop instead (EstimateRequest.gravity: 14.8° and 12.9° on those views).
    train_theta_std: float = 8.0
    test_views: int = 30
    # New views of every training CAD mesh (other seeds, the test views' settings and backgrounds), evaluated
    # beside the held-out meshes: the error the model leaves on meshes it has learnt, so that unseen − seen is
    # the part that more training meshes could remove and seen the floor they could not. Rendered into
    # OUT/data/cad_seen_test even where `data` reuses another run's renders (a few seconds); 0: none.
    # On fold 0 (410 views): MedErr 11.6° / Acc@π/6 0.734 / cat-acc 0.961, symmetry-reduced 9.0° / 0.895, against
    # 15.3° / 0.669 / 0.908 and 12.9° / 0.786 on the held-out meshes: even meshes it trained on miss the 8° / 0.90
    # targets, so more meshes alone would not reach them. The error grows with the distance from a new view to its
    # mesh's nearest training view (symmetry-reduced median 7.8° within 8°, 8.7° at 8-12°, 12.1° at 12-16°; median
    # distance 9.6° at 160 views): the heads interpolate between the views they saw.
    seen_test_views: int = 10
    photos: str | None = None
    # Network input side; views are rendered at 1.25x it. 192 because, on the same held-out
    # CAD meshes, 192 beat 128 (all images MedErr 17.2° vs 23.4°, Acc@π/6 0.622 vs 0.575,
    # cat-acc 0.892 vs 0.803) in 33.6 vs 16.0 min, still well inside the 60-minute budget.
    input_size: int = 192
    # The bundle averages each crop with its mirror image (vantage.train.test_time), and the
    # members of a deep ensemble on the shared frozen features (vantage.train.ensemble), trained
    # side by side on the two cores at about the wall time of one. On the held-out renders of the
    # 192² recipe: member 0 alone MedErr 16.3°, with flip 15.7°, both members 16.2°, both with flip
    # 15.2°, for 2.1x one network's serving latency (ORT CPU, batch 1). The bundle's pose is a vote over
    # the four answers (vantage.train.test_time): 15.3° / Acc@π/6 0.669 vs 15.4° / 0.661 anchored on member 0.
    # A third member (a vote over six answers; 31 min more training on a free core) 15.4° / 0.672 / cat-acc
    # 0.906 vs 0.908 (symmetry-reduced 12.7° / 0.794 vs 12.9° / 0.786): no gain worth 1.5x the training.
    # Members with another head beside an M_P+ one (on the same cached features), for better alternatives:
    # an M_LE+ member on fold 0 15.4° / 0.678, best of 2 hypotheses 0.853 vs 15.3° / 0.669 / 0.808; but fold 1
    # 19.0° / 0.608 / 0.733 vs 18.2° / 0.639 / 0.758, fold 2 22.3° / 0.553 / 0.775 vs 20.3° / 0.567 / 0.753:
    # the answer worse on two folds and the alternatives no better over three, so the members stay alike.
    # Platt scaling of the bundle's hypothesis scores, (slope, bias) of the answer and of the alternatives
    # (vantage.calibration), written into the bundle so that its pose confidence is P(error < 30°). Fitted
    # with `vantage calibrate` on this recipe's fold 1 and fold 2 bundles and their held-out views (720
    # views), so fold 0, the reference split, is a clean test of it: docs/RESULTS.md. A recipe that changes
    # the model should refit it (`vantage calibrate`); None leaves the raw scores.
    confidence_calibration: tuple[tuple[float, float], tuple[float, float]] | None = ((0.392, -0.609),
                                                                                     (0.327, -1.023))
    test_time: str = "flip"
    members: int = 2
    # Feature network of each member (vantage.train.backbone.EFFICIENTNETS, at its default tap); empty = every
    # member on `train.model.backbone`. Members on different networks see different frozen features, so they
    # may err apart where members on one network err together (vantage.train.ensemble). A Lite0 and a Lite1 member
    # (folds 0 and 1 side by side, 109 min each): fold 0 MedErr 17.0° / Acc@π/6 0.644 / cat-acc 0.897 vs 15.3° /
    # 0.669 / 0.908 (symmetry-reduced 12.9° / 0.772 vs 12.9° / 0.786; best of two hypotheses 0.814 vs 0.808), fold 1
    # 18.7° / 0.625 / 0.769 vs 18.2° / 0.639 / 0.778 (14.4° / 0.778 vs 13.5° / 0.778; 0.719 vs 0.758), for 1.5x the
    # serving latency at batch 1 (ORT CPU, 35.3 vs 24.2 ms; 1.9x at batch 8): no gain, so the members stay on Lite0.
    member_backbones: tuple[str, ...] = ()
    workers: int = 2
    split_seed: int = 0
    # Which run of held-out meshes (meshes.hold_out): folds 0, 1, 2 are disjoint on PASCAL3D+'s
    # CAD set (3 to 8 meshes per category), so three runs cross-validate the reference figures.
    fold: int = 0
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        data=[], out="", epochs=40, flip=True, augmented_copies=3, lr=2e-3, threads=1,
        # The one-cycle schedule's peak learning rate: 1e-3 and 4e-3 on fold 0 (from the reference renders and
        # feature cache, the two side by side) gave MedErr 15.2° / Acc@π/6 0.667 / cat-acc 0.889 and 15.4° /
        # 0.669 / 0.894 vs 15.3° / 0.669 / 0.908 (symmetry-reduced 12.6° / 0.767 and 12.7° / 0.781 vs 12.9° /
        # 0.786): the pose flat within the run-to-run noise, 1e-3's cat-acc a little lower (RESULTS.md's levers
        # table), so it stays 2e-3.
        # M_P+: best head of the 128² ablation (docs/RESULTS.md) and, at 192² on the same renders,
        # MedErr 16.3° / Acc@π/6 0.656 vs M_G+ 17.2° / 0.622 (M_G+ with α = 0.1: 19.3° / 0.614).
        # One category-independent head of the same size instead of a head per category (category_dependent
        # False; better for R_G in the 128² ablation) on fold 0: MedErr 18.1° / Acc@π/6 0.639 / cat-acc 0.894 vs
        # 15.3° / 0.669 / 0.908 (symmetry-reduced 14.5° / 0.744 vs 12.9° / 0.786): the heads stay per category.
        # K = 8 key poses instead of 16 (from fold 0's renders and feature cache): MedErr 17.1° / Acc@π/6 0.644 /
        # cat-acc 0.908 (symmetry-reduced 14.6° / 0.750) vs 15.3° / 0.669 / 0.908 (12.9° / 0.786): worse beyond the
        # run-to-run noise (K = 32 on one 128² network earlier: 17.2° vs 16.3°, no gain). K = 32 in the recipe: fold 0
        # 13.9° / 0.669 / 0.908 (symmetry-reduced 11.9° / 0.803; new views of the training meshes 11.2° vs 11.6°):
        # better; fold 2 21.2° / 0.547 / 0.814 vs 20.3° / 0.567 / 0.797 (13.1° / 0.758 vs 13.1° / 0.783): not;
        # K = 64 on fold 0 15.6° / 0.675 / 0.908 (12.4° / 0.783): only the symmetry-reduced MedErr past the noise
        # (−0.6° vs 0.5°), the rest within it. Better on one fold of two at 32, so K stays 16.
        model=ModelConfig(head="bd_p", per_bin_delta=True, num_bins=16),
        # Occlusion (random erasing) on half the augmented crops: one M_P+ network on the same renders,
        # on the held-out views MedErr 16.7° / Acc@π/6 0.656 vs 16.3° / 0.656 without (noise), and on the
        # same views with a noise rectangle over 10-30% of the object 25.5° / 0.536 / cat-acc 0.806 vs
        # 37.6° / 0.456 / 0.700: photos have occluders, renders do not. The whole recipe with it: 15.4° /
        # 0.661 / 0.908 on the clean views (15.2° / 0.667 / 0.894 before), 22.1° vs 34.1° on occluded ones.
        # Camera corruptions on half the augmented frames (AugmentConfig.camera_prob 0.5: noise, exposure, motion
        # blur, defocus, JPEG, colour cast) on fold 0: clean 16.5° / 0.675 / 0.900 vs 15.3° / 0.669 / 0.908, over the
        # bench's 27 corrupted sets (vantage.train.corruption_bench) mean MedErr 21.3° / Acc@π/6 0.599 vs 21.6° /
        # 0.589 (noise σ 20 18.0° vs 20.6°, dark 0.04 22.5° vs 24.7°, JPEG 5 27.8° vs 32.5°, motion blur 21 px 33.7°
        # vs 34.8°); with texture occluders too (occluder "texture") clean 16.1° / 0.656 / 0.886, occluded 30%
        # 27.8° vs 29.9° (45%: 46.7° vs 43.0°). A degree or two where frames are bad for one lost on clean ones:
        # both stay off.
        augment=AugmentConfig(occlude_prob=0.5),
    ))


class Split(NamedTuple):
    """Where a recipe's renders lie."""

    train_dirs: list[str]
    test_dir: str | None  # the held-out meshes' views; None when none are held out
    held_out: list[str]  # their model ids
    seen_dir: str | None  # new views of the training CAD meshes; None when `seen_test_views` is 0


def render_split(cfg: RecipeConfig) -> Split:
    """Render (or reuse) the training folders, the held-out test folder and the training meshes' new views.

    `cfg.split_seed` and `cfg.fold` pick which meshes of each category are held out.
    """
    from vantage.train.hybrids import hybrid_specs
    from vantage.train.meshes import builtin_specs, hold_out, scan_repository
    from vantage.train.render import RenderConfig, render_dataset, rendered_with

    data = Path(cfg.data) if cfg.data else Path(cfg.out) / "data"
    train_specs, held = hold_out(scan_repository(cfg.models), cfg.held_out_per_category,
                                 seed=cfg.split_seed, fold=cfg.fold)
    hybrids = hybrid_specs(train_specs, cfg.cad_hybrids, seed=cfg.split_seed)  # of training meshes only
    test_bg = {"photo": 1.0} if cfg.photos else {"texture": 1.0}
    size = {"image_size": cfg.input_size * 5 // 4, "photo_dir": cfg.photos}
    training = {"ground_prob": cfg.ground_prob, "elevation_range": tuple(cfg.train_elevation_range),
                "theta_std_deg": cfg.train_theta_std, "coordinates": cfg.train.model.coordinates}
    jobs = [
        (train_specs, data / "cad_train", RenderConfig(views_per_model=cfg.cad_views, seed=1,
                                                               shape_variants=cfg.cad_shapes, **size, **training)),
        (builtin_specs(cfg.builtin_instances), data / "builtin_train",
         RenderConfig(views_per_model=cfg.builtin_views, seed=2, **size, **training)),
        (hybrids, data / "hybrid_train", RenderConfig(views_per_model=cfg.hybrid_views, seed=3, **size, **training)),
        (held, data / "cad_test", RenderConfig(views_per_model=cfg.test_views, seed=TEST_SEED,
                                               background_weights=test_bg, **size)),
    ]
    stale = [folder for specs, folder, render_cfg in jobs if specs and not rendered_with(folder, render_cfg, specs)]
    if cfg.data and stale:
        raise ValueError(f"{', '.join(map(str, stale))}: not rendered with this recipe's meshes and settings; another "
                         f"run's renders (`data`) are reused as they are, never rendered over: leave `data` unset to "
                         f"render into {Path(cfg.out) / 'data'}")
    seen = Path(cfg.out) / "data" / "cad_seen_test"  # the run's own, whatever `data` reuses
    if cfg.seen_test_views:
        jobs.append((train_specs, seen, RenderConfig(views_per_model=cfg.seen_test_views, seed=SEEN_SEED,
                                                     background_weights=test_bg, **size)))
        if not rendered_with(seen, jobs[-1][2], train_specs):
            stale.append(seen)
    for specs, folder, render_cfg in jobs:
        if folder in stale:
            render_dataset(specs, folder, render_cfg, cfg.workers)
    train_dirs = [str(data / "cad_train")] + ([str(data / "builtin_train")] if cfg.builtin_instances else []) + (
        [str(data / "hybrid_train")] if hybrids else [])
    return Split(train_dirs, str(data / "cad_test") if held else None, [spec.model_id for spec in held],
                 str(seen) if cfg.seen_test_views else None)


def check_recipe(cfg: RecipeConfig) -> None:
    """Check the training settings and build each distinct member network once (and set the input size), so that
    settings no run or network can take (an input size, an unknown backbone, a backbone per member that does not
    match `members`, a negative loss weight) fail with a ValueError here, not after minutes of rendering."""
    from vantage.train.ensemble import distinct_models, member_configs
    from vantage.train.model import JointPoseNet
    from vantage.train.trainer import check_settings

    cfg.train.model.input_size = cfg.input_size
    if cfg.held_out_per_category < 0:
        raise ValueError(f"held_out_per_category must be 0 or more, got {cfg.held_out_per_category}")
    if cfg.held_out_per_category == 0 and cfg.fold:
        raise ValueError(f"fold {cfg.fold} picks which meshes are held out, but held_out_per_category 0 holds none out")
    if cfg.members < 1:
        raise ValueError(f"members must be at least 1, got {cfg.members}")
    if cfg.seen_test_views < 0:
        raise ValueError(f"seen_test_views must be 0 or more, got {cfg.seen_test_views}")
    check_settings(cfg.train)
    for model in distinct_models(member_configs(cfg.train, cfg.members, cfg.member_backbones)):
        JointPoseNet(model)


def run_recipe(cfg: RecipeConfig) -> dict:
    """Render, train, export and evaluate; returns (and writes to OUT/recipe.json) the measurements."""
    from vantage.export.onnx_export import export_bundle
    from vantage.train.ensemble import exported_model, train_members
    from vantage.train.evaluate import evaluate

    check_recipe(cfg)
    tcfg = cfg.train
    t0 = time.time()
    out = Path(cfg.out)
    seconds: dict[str, float] = {}
    split = render_split(cfg)
    seconds["render"] = time.time() - t0

    t = time.time()
    tcfg.data, tcfg.out = split.train_dirs, str(out / "run")
    ckpts = train_members(tcfg, cfg.members, cfg.member_backbones)
    seconds["train"] = time.time() - t

    t = time.time()
    model, info = exported_model(ckpts, cfg.test_time)
    summary = {"recipe": "reference", "epochs": tcfg.epochs, "head": tcfg.model.head,
               "backbones": list(cfg.member_backbones) or [tcfg.model.backbone],
               "last_epoch": info["history"][-1] if info["history"] else {},
               "held_out": split.held_out}  # the meshes it never saw: where a user can measure it on unseen models
    bundle = export_bundle(model, out / "bundle", training=summary, crop_margin=tcfg.crop_margin)
    if cfg.confidence_calibration is not None:
        answer, alternatives = cfg.confidence_calibration
        calibration = ConfidenceCalibration(answer, alternatives, views=RECIPE_CALIBRATION_VIEWS,
                                            source=RECIPE_CALIBRATION_SOURCE)
        save_metadata(bundle, replace(load_metadata(bundle), confidence_calibration=calibration.to_dict()))
    seconds["export"] = time.time() - t

    config = {**{k: v for k, v in asdict(cfg).items() if k != "train"}, "train": tcfg.to_dict()}
    t = time.time()
    seen = seen_figures(evaluate(bundle, split.seen_dir, out / "eval_seen", models=cfg.models)) \
        if split.seen_dir else None
    seconds["evaluate_seen"] = time.time() - t
    if split.test_dir is None:
        seconds["total"] = time.time() - t0
        result = {"config": config, "seconds": seconds, "held_out": [], "evaluated": False,
                  "figures": SHIPPED_FIGURES, "seen": seen, "bundle": str(bundle)}
        (out / "recipe.json").write_text(json.dumps(result, indent=1))
        print(f"\ntrained on every mesh, nothing held out to evaluate on ({SHIPPED_FIGURES}); "
              f"{seconds['total'] / 60:.1f} min; bundle {bundle}")
        print_seen(seen)
        return result

    t = time.time()
    report = evaluate(bundle, split.test_dir, out / "eval", models=cfg.models)
    seconds["evaluate"] = time.time() - t
    seconds["total"] = time.time() - t0
    result = {
        "config": config,
        "seconds": seconds,
        "held_out": split.held_out,
        "evaluated": True,
        **{key: report[key] for key in ("overall", "mean_over_categories", "per_category", "topk", "misses",
                                        "symmetry", "elevation", "hypotheses")},
        "seen": seen,
        "bundle": str(bundle),
    }
    (out / "recipe.json").write_text(json.dumps(result, indent=1))
    print_summary(report, seconds["total"], bundle)
    print_seen(seen)
    return result


def seen_figures(report: dict) -> dict:
    """The parts of an evaluation of the training meshes' new views that recipe.json keeps: the figures, the
    symmetry-reduced ones and the misses' causes (the whole report lies in OUT/eval_seen)."""
    return {"overall": report["overall"], "per_category": report["per_category"],
            "symmetry": {"overall": report["symmetry"]["overall"], "per_category": report["symmetry"]["per_category"]},
            "misses": {"overall": report["misses"]["overall"]}}


def print_seen(seen: dict | None) -> None:
    """The training meshes' new views: the floor under the held-out figures that more meshes would not lower."""
    if seen is not None:
        o, sym = seen["overall"], seen["symmetry"]["overall"]
        print(f"training CAD meshes, new views ({o['count']}): MedErr {o['med_err']:.1f}°  Acc@π/6 {o['acc_pi6']:.3f}"
              f"  cat-acc {o['cat_acc']:.3f}; symmetry-reduced {sym['med_err']:.1f}° / {sym['acc_pi6']:.3f}")


def print_summary(report: dict, seconds: float, bundle: Path) -> None:
    """The held-out figures a recipe run ends with: the table, the misses' causes, the hypotheses, the calibration."""
    from vantage.train.metrics import format_table

    print("\n" + format_table(report))
    print(f"\nunseen CAD models: MedErr {report['overall']['med_err']:.1f}°  Acc@π/6 {report['overall']['acc_pi6']:.3f}  "
          f"cat-acc {report['overall']['cat_acc']:.3f}; {seconds / 60:.1f} min; bundle {bundle}")
    sym = report["symmetry"]["overall"]
    print(f"with each held-out mesh's own symmetries forgiven: MedErr {sym['med_err']:.1f}°  Acc@π/6 {sym['acc_pi6']:.3f}")
    miss = report["misses"]["overall"]
    print(f"missed views: {miss['missed']:.3f} = wrong category {miss['wrong_category']:.3f} + half turn "
          f"{miss['half_turn']:.3f} + other {miss['other']:.3f}")
    best = report["hypotheses"]["best_of"]
    print("Acc@π/6 when the best of the first k pose hypotheses counts: "
          + ", ".join(f"k={b['k']} {b['acc_pi6']:.3f}" for b in best))
    kind = "calibrated" if report["hypotheses"].get("calibration") else "raw"
    print(f"expected calibration error of the answers' pose confidence ({kind}): {report['hypotheses']['ece']:.3f}")
