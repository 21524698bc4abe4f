"""Many runs at once on submitit: local workers (one run per GPU) or a SLURM cluster.

    python -m robustbook.reproduce KEYS --profile paper --executor local --workers 4
    python -m robustbook.reproduce KEYS --profile paper --executor slurm --partition gpu --time 1440

`plan_waves` orders the work of some experiments into dependency waves:

1. every run that starts from scratch, the transfer partners of the runs whose table has a
   black-box column (`evaluate.partner_config`), and the standard-trained runs AELFs / JT*
   start from (`runs.st_config`);
2. the runs that start from such a standard-trained run (`init_from_st`);
3. the evaluation of every run with its table's suite;
4. one job writing the results tables (`results.collect` / `results.store`).

A wave starts when the previous one has finished. Finished runs are skipped at planning,
and every run resumes from its last checkpoint, so after a crash, a killed worker or a
preempted job the same command continues. On SLURM each wave is one job array; jobs are
`submitit.helpers.Checkpointable`, so a preempted or timed-out job is requeued and resumes.

Nothing cluster-specific is written here: SLURM options come from the command line or a
small YAML/JSON file (`--cluster-config`), e.g.

    partition: gpu
    time: 1440          # minutes per job
    gpus_per_node: 1
    mem_gb: 32
    cpus_per_task: 8
    array_parallelism: 16
    additional: {account: my-project, qos: normal}
    setup: ["module load cuda", "source .venv/bin/activate"]
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from . import presets, runs
from .config import RunConfig

__all__ = ["Task", "plan_waves", "execute", "Options", "submit_waves", "image_passes", "compute_table",
           "ExecutorError"]

WAVE_NAMES = ("independent runs and transfer partners", "runs from a standard-trained run", "evaluations",
              "results tables")


class ExecutorError(RuntimeError):
    """Some jobs of a wave failed; the message lists them and says how to continue."""


@dataclass(frozen=True)
class Task:
    """One job's work: 'train' or 'evaluate' a run (config as a dict), or 'collect' tables."""

    kind: str
    config: Optional[dict] = None
    suite: Any = None
    """Suite name, or a Suite as a dict (`evaluate.Suite.to_dict`)."""
    keys: tuple = ()
    profile: str = ""
    seeds: Optional[tuple] = None
    root: str = ""
    label: str = ""
    source: Optional[dict] = None
    """Config (as a dict) of the transfer source of an 'evaluate' task (None: no transfer)."""
    results_dir: Optional[str] = None
    """Where 'collect' writes the tables (None: data/results)."""

    @property
    def run_id(self) -> Optional[str]:
        return RunConfig.from_dict(self.config).run_id if self.config else None


def _suite_spec(suite):
    return suite.to_dict() if hasattr(suite, "to_dict") else suite


def plan_waves(keys: Iterable[str], profile: str, seeds: Optional[Sequence[int]] = None,
               suite: Optional[str] = "auto", root: Optional[Path] = None,
               skip_finished: bool = True, results_dir: Optional[Path] = None) -> List[List[Task]]:
    """The four dependency waves (module docstring) of experiments `keys` at `profile`,
    each run once however many tables share it; finished runs and stored evaluations are left out."""
    from . import evaluate, methods, results
    from .reproduce import plan, suite_for

    keys = list(keys)
    root = Path(root or runs.runs_root())
    waves: List[List[Task]] = [[], [], [], []]
    seen_train, seen_eval = set(), set()

    def add_train(cfg: RunConfig, label: str) -> None:
        rid = cfg.run_id
        if rid in seen_train:
            return
        seen_train.add(rid)
        if skip_finished and ((root / rid / "model.pt").exists() or runs.records_complete(cfg, root)):
            return
        wave = 1 if methods.get(cfg.method).init_from_st else 0
        waves[wave].append(Task("train", cfg.to_dict(), root=str(root), label=label))

    for key in keys:
        key_suite = suite_for(key, profile, suite)
        s = evaluate.get_suite(key_suite) if key_suite is not None else None
        exp_seeds = presets.get(key).seeds(profile)
        for label, cfg in plan(key, profile, seeds):
            add_train(cfg, f"{key}/{label}/seed {cfg.seed}")
            if methods.get(cfg.method).init_from_st:
                add_train(runs.st_config(cfg), f"{key}/{label}/seed {cfg.seed} (ST start)")
            if s is None:
                continue
            partner = None
            if s.transfer:
                partner = evaluate.partner_config(cfg, exp_seeds)
                add_train(partner, f"{key}/{label}/seed {partner.seed} (transfer partner)")
                if methods.get(partner.method).init_from_st:
                    add_train(runs.st_config(partner), f"{key}/{label}/seed {partner.seed} (partner's ST start)")
            ident = (cfg.run_id, s.resolve(cfg).hash)
            if ident in seen_eval:
                continue
            seen_eval.add(ident)
            if skip_finished and _evaluated(cfg, s, root, partner):
                continue
            waves[2].append(Task("evaluate", cfg.to_dict(), suite=_suite_spec(key_suite), root=str(root),
                                 label=f"{key}/{label}/seed {cfg.seed}",
                                 source=partner.to_dict() if partner is not None else None))
    tables = [k for k in keys if k in results.TABLES]
    if tables:
        waves[3].append(Task("collect", keys=tuple(tables), profile=profile,
                             seeds=tuple(seeds) if seeds is not None else None, root=str(root), label="tables",
                             results_dir=str(results_dir) if results_dir else None))
    return waves


def _evaluated(cfg: RunConfig, suite, root: Path, source: Optional[RunConfig] = None) -> bool:
    """Whether a stored evaluation of `cfg` with `suite` (and transfer `source`) exists for the
    weights its committed weights.json names (cheap; never loads weights)."""
    from . import evaluate, results

    folder = root / cfg.run_id
    if runs.weights_id(folder) is None:
        return False
    if source is not None and runs.weights_id(root / source.run_id) is None:
        return False
    try:
        return evaluate.load_result(results._stub(cfg, folder), suite, source=source) is not None
    except Exception:  # a record format the planner cannot check: let the job decide
        return False


def execute(task: Task) -> str:
    """Do one task in this process (what every job runs)."""
    if task.root:
        os.environ["ROBUSTBOOK_RUNS"] = task.root
    os.environ.setdefault("ROBUSTBOOK_QUIET", "1")
    if task.kind == "collect":
        from . import results

        paths = [results.store(results.collect(k, task.profile, task.seeds), task.results_dir) for k in task.keys]
        return "tables: " + ", ".join(p.name for p in paths)
    from . import evaluate
    from .run import train_and_evaluate

    cfg = RunConfig.from_dict(task.config)
    if task.kind == "train":
        run = runs.train(cfg, progress=False)
        return f"trained {run.id}"
    if task.kind == "evaluate":
        suite = task.suite if isinstance(task.suite, str) else evaluate.Suite.from_dict(task.suite)
        run = train_and_evaluate(cfg, suite=None, train=False, evaluate=False, progress=False)
        source = runs.train(RunConfig.from_dict(task.source), progress=False) if task.source else None
        evaluate.evaluate(run, suite, source=source, progress=False)
        return f"evaluated {run.id}"
    raise ValueError(f"unknown task kind {task.kind!r}")


def _execute_all(tasks: List[Task]) -> List[str]:
    return [execute(t) for t in tasks]


def _job_class():
    import submitit

    class Job(submitit.helpers.Checkpointable):
        """A job runs its tasks in order; on preemption / timeout it is requeued with the same
        tasks (finished ones load in a second, the interrupted one resumes from its checkpoint)."""

        def __call__(self, tasks: List[Task]) -> List[str]:
            return _execute_all(tasks)

    return Job


@dataclass
class Options:
    """Where and how the jobs run; every field can come from the command line or a file."""

    executor: str = "local"
    """'local' (this machine, `workers` processes) or 'slurm'; 'debug' runs in this process."""
    workers: int = 1
    """Local: processes at once (one GPU each when `gpus_per_node` > 0)."""
    folder: str = "data/submitit"
    """Job scripts, pickles and logs (not committed)."""
    gpus_per_node: int = 0
    """GPUs per job (local: per worker; GPU i of `visible_gpus` goes to worker i)."""
    visible_gpus: Optional[List[int]] = None
    """Local: the GPU ids to use (default 0 .. workers-1 when gpus_per_node > 0)."""
    partition: Optional[str] = None
    time: int = 24 * 60
    """Minutes per job (SLURM time limit; local timeout)."""
    mem_gb: Optional[float] = None
    cpus_per_task: Optional[int] = None
    array_parallelism: int = 64
    """SLURM: jobs of one array running at once."""
    runs_per_job: int = 1
    """SLURM: tasks per job (several short runs share one job's start-up)."""
    additional: Dict[str, Any] = field(default_factory=dict)
    """SLURM: any other sbatch option, e.g. {'account': 'x', 'qos': 'y', 'constraint': 'a100'}."""
    setup: List[str] = field(default_factory=list)
    """Shell lines run before each job (e.g. 'module load cuda', activating the environment)."""
    poll_s: float = 1.0
    """Local: seconds between checks of whether a job has ended."""

    @classmethod
    def load(cls, path: Optional[str], **overrides) -> "Options":
        """Options from a YAML/JSON file (if given), then `overrides` that are not None."""
        values: Dict[str, Any] = {}
        if path:
            text = Path(path).read_text()
            if path.endswith(".json"):
                values = json.loads(text)
            else:
                import yaml

                values = yaml.safe_load(text) or {}
            names = set(cls.__dataclass_fields__)
            unknown = sorted(set(values) - names)
            if unknown:
                raise ValueError(f"{path}: unknown option(s) {unknown}; valid: {sorted(names)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        opts = cls(**values)
        if opts.executor not in ("local", "slurm", "debug"):
            raise ValueError(f"executor={opts.executor!r}: choose 'local', 'slurm' or 'debug'")
        if opts.workers < 1 or opts.runs_per_job < 1:
            raise ValueError("workers and runs_per_job must be >= 1")
        return opts


def _chunks(tasks: List[Task], n: int) -> List[List[Task]]:
    """`tasks` dealt round-robin into at most n non-empty lists (one per worker)."""
    out = [tasks[i::n] for i in range(min(n, len(tasks)))]
    return [c for c in out if c]


def _executor(opts: Options, slot: int = 0):
    import submitit

    folder = Path(opts.folder)
    if opts.executor == "debug":
        return submitit.DebugExecutor(folder=folder)
    if opts.executor == "local":
        ex = submitit.LocalExecutor(folder=folder)
        params: Dict[str, Any] = dict(timeout_min=opts.time, gpus_per_node=opts.gpus_per_node)
        if opts.gpus_per_node:
            gpus = opts.visible_gpus or list(range(opts.workers * opts.gpus_per_node))
            params["visible_gpus"] = gpus[slot * opts.gpus_per_node:(slot + 1) * opts.gpus_per_node]
        if opts.setup:
            params["setup"] = list(opts.setup)
        ex.update_parameters(**params)
        return ex
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params = dict(timeout_min=opts.time, gpus_per_node=opts.gpus_per_node, tasks_per_node=1, nodes=1,
                  slurm_array_parallelism=opts.array_parallelism)
    if opts.partition:
        params["slurm_partition"] = opts.partition
    if opts.mem_gb:
        params["mem_gb"] = opts.mem_gb
    if opts.cpus_per_task:
        params["cpus_per_task"] = opts.cpus_per_task
    if opts.additional:
        params["slurm_additional_parameters"] = dict(opts.additional)
    if opts.setup:
        params["slurm_setup"] = list(opts.setup)
    ex.update_parameters(**params)
    return ex


def _run_wave(tasks: List[Task], opts: Options, on_submit: Optional[Callable] = None) -> List[tuple]:
    """Run one wave; (tasks of a job, error or None) per job."""
    job_cls = _job_class()
    if opts.executor == "slurm":
        groups = [tasks[i:i + opts.runs_per_job] for i in range(0, len(tasks), opts.runs_per_job)]
        ex = _executor(opts)
        jobs = ex.map_array(job_cls(), groups)
        pairs = list(zip(groups, jobs))
    else:  # local / debug: one job per worker, its share of the wave in order
        pairs = []
        for slot, group in enumerate(_chunks(tasks, opts.workers)):
            pairs.append((group, _executor(opts, slot).submit(job_cls(), group)))
    for group, job in pairs:
        print(f"  job {job.job_id}: {len(group)} task(s): " + "; ".join(t.label for t in group[:3])
              + (" ..." if len(group) > 3 else ""), flush=True)
        if on_submit:
            on_submit(job, group)
    out = []
    for group, job in pairs:
        if opts.executor == "local":
            while not job.done():  # (submitit's own wait polls once a second)
                time.sleep(opts.poll_s)
            if not job.paths.result_pickle.exists():  # killed: submitit would wait 15 s for a result
                out.append((group, f"job {job.job_id}: ended without a result ({job.state}; killed?) "
                                   f"(log: {job.paths.stderr})"))
                continue
        try:
            job.result()
            out.append((group, None))
        except Exception as err:  # noqa: BLE001 (reported with the job's log path)
            last = [line for line in str(err).strip().splitlines() if line.strip()][-1:] or [type(err).__name__]
            out.append((group, f"job {job.job_id}: {last[0].strip()} (log: {getattr(job.paths, 'stderr', '?')})"))
    return out


def submit_waves(waves: List[List[Task]], opts: Options, on_submit: Optional[Callable] = None) -> None:
    """Run the waves one after the other; raise ExecutorError after the first wave with a failed
    job (the next waves depend on it). Re-running the same command continues."""
    for i, tasks in enumerate(waves):
        if not tasks:
            continue
        t0 = time.perf_counter()
        print(f"wave {i + 1}/{len(waves)} ({WAVE_NAMES[i]}): {len(tasks)} task(s) on {opts.executor}", flush=True)
        failed = [err for _, err in _run_wave(tasks, opts, on_submit) if err]
        if failed:
            raise ExecutorError(
                f"wave {i + 1} ({WAVE_NAMES[i]}): {len(failed)} job(s) failed:\n  " + "\n  ".join(failed)
                + "\nFix the cause if there is one (see the logs) and run the same command again: finished runs "
                  "are kept, interrupted ones resume from their last epoch.")
        print(f"wave {i + 1} done in {time.perf_counter() - t0:.0f} s", flush=True)


# --------------------------------------------------------------------------- compute estimate
def image_passes(cfg: RunConfig) -> int:
    """Forward+backward image passes of training `cfg` (its ST start excluded): epochs x train
    images x (attack steps + 1), + 1 more pass for methods with a second clean/shuffled forward
    (a rough but device-independent unit: one pass ~ one image through the network and back)."""
    from . import data as data_mod, methods

    m = methods.get(cfg.method)
    n = cfg.train_size or data_mod.DATASETS[cfg.dataset][2][0]
    steps = cfg.steps if m.adversarial else 0
    extra = 1 if cfg.method in ("alp", "trades", "aelf", "rbsat_pgd", "rlfat_p", "rbsat_trades", "rlfat_t",
                                "at_reg", "at_att_reg") else 0
    if cfg.method in ("jt", "jt_star", "aelfs"):
        steps = steps * cfg.adv_fraction
    return int(round(cfg.epochs * n * (steps + 1 + extra)))


def compute_table(keys: Optional[Sequence[str]] = None, profile: str = "paper"):
    """Distinct training runs per experiment at `profile` and their image-passes (shared runs,
    ST starts and transfer partners counted once, in the first experiment that needs them)."""
    import pandas as pd

    waves_seen: set = set()
    rows = []
    for key in keys or list(presets.EXPERIMENTS):
        waves = plan_waves([key], profile, skip_finished=False)
        train = [RunConfig.from_dict(t.config) for w in waves[:2] for t in w]
        new = [c for c in train if c.run_id not in waves_seen]
        waves_seen.update(c.run_id for c in new)
        passes = sum(image_passes(c) for c in new)
        exp = presets.get(key)
        rows.append(dict(experiment=key, table=f"{exp.paper} {exp.table}", runs=len(train), new_runs=len(new),
                         evaluations=len(waves[2]), image_passes_1e9=round(passes / 1e9, 2)))
    return pd.DataFrame(rows)
