"""Train (and evaluate) every run of an experiment, resumably:

    python -m robustbook.reproduce fpr_table2 --profile cpu --seeds 0 1 2

Runs go seed by seed (all methods of seed 0, then seed 1, ...), so a session that
stops early leaves complete seeds behind. Every run is cached by its config hash:
finished runs load, killed runs resume from their last epoch, so re-running the
same command simply continues.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Iterable, List, Optional, Sequence

from . import presets, runs


def plan(key: str, profile: str, seeds: Optional[Sequence[int]] = None) -> List[tuple]:
    """(label, cfg) in execution order: seed-major, the experiment's row order within a seed."""
    exp = presets.get(key)
    cfgs = exp.configs(profile, seeds)
    return sorted(cfgs, key=lambda lc: lc[1].seed)


def suite_for(key: str, profile: str, suite: Optional[str] = "auto"):
    """The evaluation suite of `key` at `profile`: 'auto' = the one its results table uses
    (with the table's per-profile changes; None if it has no table), None = no evaluation,
    or a suite name."""
    if suite != "auto":
        return suite
    from . import results

    return results.TABLES[key].suite_at(profile) if key in results.TABLES else None


def reproduce(keys: Iterable[str], profile: str, seeds: Optional[Sequence[int]] = None,
              suite: Optional[str] = "auto", progress: bool = True, retrain: bool = False) -> List[runs.Run]:
    """Train every run of `keys` at `profile`, evaluate it with `suite` ('auto': the results
    table's suite; None: no evaluation) and, for experiments with a results table, rewrite
    data/results/<key>-<profile>.json after every run (so an interrupted session keeps
    everything finished so far).

    A run whose committed records are complete (config, every epoch's metrics, weights.json
    and the evaluation of the table's suite) is finished even without its weights (a fresh
    clone): it is skipped, not retrained, unless `retrain`. The transfer source of seed s is
    the profile's next seed ((s+1) mod 3 with three seeds; `presets.Experiment.transfer_seed`)."""
    from . import evaluate, results

    done = []
    for key in keys:
        key_suite = suite_for(key, profile, suite)
        exp_seeds = presets.get(key).seeds(profile)
        for label, cfg in plan(key, profile, seeds):
            t0 = time.perf_counter()
            partner = None
            if key_suite and evaluate.get_suite(key_suite).transfer:
                partner = evaluate.partner_config(cfg, exp_seeds)
            if not retrain and _finished_on_record(cfg, key_suite, partner):
                print(f"[{key}] {label} seed {cfg.seed}: {cfg.run_id} finished on record (no weights here; "
                      "--retrain to train it again)", flush=True)
                continue
            run = runs.train(cfg, progress=progress)
            msg = f"[{key}] {label} seed {cfg.seed}: {run.id} trained/loaded in {time.perf_counter() - t0:.0f} s"
            if key_suite:
                t1 = time.perf_counter()
                source = runs.train(partner, progress=progress) if partner is not None else None
                evaluate.evaluate(run, key_suite, source=source, progress=progress)
                name = getattr(key_suite, "name", key_suite)
                msg += f", evaluated with {name} in {time.perf_counter() - t1:.0f} s"
            if key in results.TABLES:
                results.store(results.collect(key, profile, seeds))
            print(msg, flush=True)
            done.append(run)
    return done


def _finished_on_record(cfg, suite, partner) -> bool:
    """Complete committed records and no weights: nothing to do here."""
    from . import evaluate, results

    folder = runs.run_dir(cfg)
    if (folder / "model.pt").exists() or not runs.records_complete(cfg):
        return False
    if not suite:
        return True
    if partner is not None and runs.weights_id(runs.run_dir(partner)) is None:
        return False
    return evaluate.load_result(results._stub(cfg, folder), suite, source=partner) is not None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiments", nargs="+", help=f"experiment keys: {', '.join(presets.EXPERIMENTS)}")
    ap.add_argument("--profile", default="cpu", choices=presets.PROFILE_NAMES)
    ap.add_argument("--seeds", nargs="*", type=int, default=None, help="default: the profile's seed count")
    ap.add_argument("--suite", default="auto",
                    help="evaluation suite for each finished run: 'auto' (default) = the results table's suite, "
                         "'none' = train only, or a name from robustbook.evaluate.SUITES")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--retrain", action="store_true",
                    help="train runs again whose committed records are complete but whose weights are not here "
                         "(the committed records are replaced only once the new run has finished)")
    cl = ap.add_argument_group("many runs at once (robustbook.executor, needs `pip install -e '.[cluster]'`)")
    cl.add_argument("--executor", default="sequential", choices=("sequential", "local", "slurm", "debug"),
                    help="'sequential' (default): one run after another in this process; 'local': --workers "
                         "processes on this machine (one GPU each with --gpus 1); 'slurm': job arrays on a cluster")
    cl.add_argument("--workers", type=int, default=None, help="local: processes at once (default 1)")
    cl.add_argument("--gpus", type=int, default=None, help="GPUs per job/worker (default 0 = the CPU)")
    cl.add_argument("--partition", default=None, help="slurm partition")
    cl.add_argument("--time", type=int, default=None, help="minutes per job (slurm time limit, local timeout)")
    cl.add_argument("--mem-gb", type=float, default=None, help="slurm memory per job")
    cl.add_argument("--cpus", type=int, default=None, help="slurm CPUs per job")
    cl.add_argument("--cluster-config", default=None,
                    help="YAML/JSON file of executor options (see robustbook.executor.Options); flags override it")
    cl.add_argument("--jobs-folder", default=None, help="submitit scripts and logs (default data/submitit)")
    args = ap.parse_args(argv)
    unknown = [k for k in args.experiments if k not in presets.EXPERIMENTS]
    if unknown:
        ap.error(f"unknown experiment(s) {unknown}; choose from {sorted(presets.EXPERIMENTS)}")
    print(f"load average {os.getloadavg()}", flush=True)
    suite = None if args.suite == "none" else args.suite
    if suite not in (None, "auto"):
        from . import evaluate

        evaluate.get_suite(suite)  # unknown names fail here, before any training
    if args.executor != "sequential":
        from . import executor

        opts = executor.Options.load(args.cluster_config, executor=args.executor, workers=args.workers,
                                     gpus_per_node=args.gpus, partition=args.partition, time=args.time,
                                     mem_gb=args.mem_gb, cpus_per_task=args.cpus, folder=args.jobs_folder)
        waves = executor.plan_waves(args.experiments, args.profile, args.seeds, suite)
        try:
            executor.submit_waves(waves, opts)
        except executor.ExecutorError as err:
            print(err, file=sys.stderr, flush=True)
            return 1
        return 0
    reproduce(args.experiments, args.profile, args.seeds, suite, progress=not args.quiet, retrain=args.retrain)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
