"""`stackgan evaluate` (score one run) and `stackgan compare` (StackGAN vs DCGAN and ablations)."""

from __future__ import annotations

import argparse

from stackgan.commands import add_trust_argument, apply_trust_argument


def add_parser(subparsers) -> None:
    from stackgan.metrics.config import CompareConfig, EvaluateConfig

    p = subparsers.add_parser(
        "evaluate", help="score a trained run: faithfulness, in-domain FID/KID, diversity, memorisation",
        description="Score a StackGAN or DCGAN run against held-out real photos on a fixed protocol: "
                    "text faithfulness (on the menu: the attribute reader, trained on renders of every "
                    "combination of the vocabulary, for training and invented names (--invented FILE: your own "
                    "list); else the name classifier), FID/KID on in-domain classifier features (not Inception), "
                    "diversity within a name, memorisation, R-precision and a D probe. Writes eval.json and "
                    "eval.md (with grids and plots) to --out.")
    p.add_argument("run", help="run folder or checkpoint (StackGAN or DCGAN)")
    EvaluateConfig.add_arguments(p)
    add_trust_argument(p)
    p.set_defaults(func=_evaluate)

    c = subparsers.add_parser(
        "compare", help="train/load StackGAN, the DCGAN baseline and ablations on one budget; one report",
        description="Train (or load) StackGAN, the unconditional DCGAN baseline and the ablations "
                    "(no DiffAugment, no conditioning augmentation) on the same data with the same budget "
                    "(steps x batch) and seed, score each with the evaluate protocol, and write a "
                    "side-by-side report (compare.md / compare.json) to --out.")
    CompareConfig.add_arguments(c)
    add_trust_argument(c)
    c.set_defaults(func=_compare)


def _evaluate(args: argparse.Namespace) -> int:
    from stackgan.metrics.config import EvaluateConfig
    from stackgan.metrics.runeval import evaluate_run

    apply_trust_argument(args)
    cfg = EvaluateConfig.from_args(args, run=args.run)
    res = evaluate_run(cfg, command=getattr(args, "command_line", None))
    print(summary_lines(res))
    print(f"report: {res['_files']['report']}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from stackgan.metrics.compare import compare
    from stackgan.metrics.config import CompareConfig

    apply_trust_argument(args)
    cfg = CompareConfig.from_args(args)
    res = compare(cfg, command=getattr(args, "command_line", None))
    print(summary_lines(res))
    print(f"report: {res['_files']['report']}")
    return 0


def summary_lines(results: dict) -> str:
    from stackgan.metrics.report import metric_rows

    labels = list(results["models"])
    rows = metric_rows(results)
    width = max(len(r[0]) for r in rows) if rows else 10
    out = [" " * width + "  " + " | ".join(labels)]
    for label, cells in rows:
        out.append(f"{label:<{width}}  " + " | ".join(cells))
    out.append("(FID/KID on in-domain classifier features, not Inception)")
    return "\n".join(out)
