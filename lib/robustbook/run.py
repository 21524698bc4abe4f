"""Train and evaluate one run: the unit a scheduler submits.

    python -m robustbook.run <run id | path/to/config.json> [--suite auto|none|NAME]

A run id is looked up in the run store (`$ROBUSTBOOK_RUNS` or data/runs: <id>/config.json);
a config.json may be any RunConfig dict (extra keys starting with '_' are ignored). The
run trains (or resumes from its checkpoint, or loads when finished) and is then evaluated
with the suite of every results table whose experiment contains it ('auto'), like
`python -m robustbook.reproduce` does for a whole table. Run it again after a crash or a
preemption: it continues where the run stopped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List, Optional, Union

from . import runs
from .config import ConfigError, RunConfig


def load_config(ref: Union[str, Path]) -> RunConfig:
    """The RunConfig named by a run id (in the run store) or stored in a config.json file."""
    path = Path(ref)
    if not path.suffix == ".json":
        path = runs.runs_root() / str(ref) / "config.json"
        if not path.exists():
            raise FileNotFoundError(
                f"no run {ref!r} in {runs.runs_root()} (no {path}); pass a config.json path, or set "
                "ROBUSTBOOK_RUNS to the run store that holds it")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    record = json.loads(path.read_text())
    cfg = RunConfig.from_dict({k: v for k, v in record.items() if not k.startswith("_")})
    stored = record.get("_run_id")
    if stored and stored != cfg.run_id:
        print(f"note: {path} was written as run {stored}; under this library version its id is {cfg.run_id}",
              flush=True)
    return cfg


def table_keys(cfg: RunConfig) -> List[str]:
    """Keys of the experiments with a results table whose runs at `cfg.profile` include `cfg`."""
    from . import presets, results

    if cfg.profile not in presets.PROFILE_NAMES:
        return []
    out = []
    for key in results.TABLES:
        exp = presets.get(key)
        if any(c.run_id == cfg.run_id for _, c in exp.configs(cfg.profile, [cfg.seed])):
            out.append(key)
    return out


def suites_for(cfg: RunConfig, suite: Optional[str] = "auto") -> list:
    """The suites `cfg` is evaluated with: 'auto' = its tables' suites (distinct), None = none,
    or a suite name."""
    if suite is None:
        return []
    if suite != "auto":
        from . import evaluate

        return [evaluate.get_suite(suite)]
    from .reproduce import suite_for

    seen, out = set(), []
    for key in table_keys(cfg):
        s = suite_for(key, cfg.profile)
        h = getattr(s, "hash", s)
        if s is not None and h not in seen:
            seen.add(h)
            out.append(s)
    return out


def train_and_evaluate(cfg: RunConfig, suite: Optional[str] = "auto", train: bool = True,
                       evaluate: bool = True, progress: Optional[bool] = None) -> runs.Run:
    """Train `cfg` (resume / load as `runs.train` does) and evaluate it with `suites_for(cfg, suite)`."""
    if not train and not (runs.run_dir(cfg) / "model.pt").exists():
        raise FileNotFoundError(f"run {cfg.run_id} has not finished training; run it without --evaluate-only first")
    run = runs.train(cfg, progress=progress)
    if evaluate:
        from . import evaluate as evaluate_mod

        for s in suites_for(cfg, suite):
            evaluate_mod.evaluate(run, s, progress=progress)
    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a run id (folder name in the run store) or a config.json path")
    ap.add_argument("--suite", default="auto",
                    help="'auto' (default): the suite of every results table the run belongs to; 'none': train only; "
                         "or a name from robustbook.evaluate.SUITES")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--train-only", action="store_true", help="train (or resume) and stop")
    group.add_argument("--evaluate-only", action="store_true", help="evaluate a finished run")
    ap.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"),
                    help="override the config's device (not part of the run id); pick a GPU with CUDA_VISIBLE_DEVICES")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.run)
        if args.device:
            cfg = cfg.replace(device=args.device)
    except (FileNotFoundError, ConfigError) as err:
        ap.error(str(err))
    suite = None if args.suite == "none" or args.train_only else args.suite
    run = train_and_evaluate(cfg, suite, train=not args.evaluate_only, evaluate=suite is not None,
                             progress=not args.quiet)
    print(f"{run.id}: done ({len(run.metrics)} epochs)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
