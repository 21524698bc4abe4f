"""The `cpu` campaign (issue 10): every `cpu` run the offline data allows, once, in an order
that completes tables, each evaluated with its table's suite and analysed while its weights
exist; safe to kill at any moment, and the same command goes on.

    python -m robustbook.campaign            # run (or continue) the whole plan
    python -m robustbook.campaign --status   # done / remaining per table, CPU-hours left
    python -m robustbook.campaign --plan     # the ordered steps, without running them

The plan (`plan`): the milestone tables first (FP&R Tables 2 with the IJCAI lambda rows, 4, 6,
the attention comparison, Table 1 (MNIST), AELF Table 2; the bf16 check after Tables 2 and 4,
see `ORDER`), then the rest: RLFAT Table 1b with its ablation rows, whose runs also give the
loss-sensitivity table (first, as the one paper with no measured table after the milestone),
AELF Tables 6, 3, 4 and FP&R Table 3. Within a table, row by row (`ROW_ORDER` where the
training order differs from the table's) and within a row seed by seed: a run, then its transfer
source (seed (s+1) mod 3, `presets.Experiment.transfer_seed`) back to back, then its evaluation
and analyses. A row is closed: the weights its seeds need are all trained within it. That
matters because weights are not committed: a machine that stops (a session ends) loses every
model.pt, and a run trained but not yet evaluated must be trained again. A run shared by several
tables (FP&R Table 2's Madry row is Table 4's) is trained once; each table evaluates and
analyses it as it needs.

The runner (`run`) takes steps in plan order with two exceptions: an evaluation whose run's
weights are here (and whose other missing runs each train in at most half the time retraining
its run later would take, or in `CHEAP_TRAIN_S`) goes first, so another table's use of a shared run
happens while its weights exist; and with `--hours H`
(the machine stops in H hours) a row is started only when its estimated cost (`Costs`, from the
measured seconds of finished runs) fits in the time left, else the next row that fits is taken,
so no training is spent on weights that would die before their evaluation.

Each step runs in a fresh subprocess (`--step`), so a library fix lands at the next step
without a restart, memory is returned after every run, and a failing step is logged and
skipped (retried at the next invocation) instead of stopping the campaign. After a step, the
results tables it touches are rewritten (`results.store`) and one line is printed and
appended to `data/campaign/log.jsonl` (committed: the measured cost behind `--status`).

A step is done when its records say so: a run is trained when it has model.pt or complete
committed records (`runs.records_complete`: a fresh clone never retrains those), evaluated
when its evaluation record for the table's suite and transfer source exists, analysed when
every stored analysis exists.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from . import presets
from .config import RunConfig

MILESTONE = ("fpr_table2", "fpr_table4", "fpr_table6", "fpr_attention", "fpr_table1", "aelf_table2")
# RLFAT first: after the milestone it is the only paper with no measured table (session 14)
REST = ("rlfat_table1b", "aelf_table6", "aelf_table3", "aelf_table4", "fpr_table3")
CHECKS = ("fpr_table2_bf16",)  # bf16 twins of Table 2's rows: may bf16 train the rest? (issue 10)
# the check right after the tables it twins (Table 4 shares Table 2's runs): where the CPU has bf16
# units it decides what everything after it costs (bf16 training steps ran 1.6-1.9x faster in
# data/bench/latest.json); where it has none its steps are skipped and the order is the milestone's
ORDER = MILESTONE[:2] + CHECKS + MILESTONE[2:] + REST
# rows trained in another order than the table shows: each method right after its baseline, so
# a campaign cut short has complete pairs for the paper's claims (RLFAT_P vs PGDAT first)
ROW_ORDER = {"rlfat_table1b": ("PGDAT", "RLFAT_P", "TRADES", "RLFAT_T")}


def log_path() -> Path:
    """`data/campaign/log.jsonl` beside the run store (`$ROBUSTBOOK_RUNS/../campaign/`)."""
    from .runs import runs_root

    return runs_root().parent / "campaign" / "log.jsonl"


def _results_dir() -> Path:
    """$ROBUSTBOOK_RESULTS, else `results/` beside the run store (data/results by default)."""
    from .runs import runs_root

    return Path(os.environ.get("ROBUSTBOOK_RESULTS") or runs_root().parent / "results")

__all__ = ["Step", "Costs", "plan", "run", "status", "cost_table", "cost_caption", "needs", "weights_here", "ANALYSES", "ORDER", "MILESTONE"]


# --------------------------------------------------------------------------- analyses per table
def _analyses(key: str, label: str, cfg: RunConfig, exp: presets.Experiment, profile: str) -> List[Tuple[str, dict]]:
    """(analysis name, kwargs) the figures of table `key` need from the run of row `label`
    (`robustbook.analysis.ANALYSES`); RunConfig kwargs name other runs of the same seed."""
    def row(name: str) -> RunConfig:
        return dict(exp.configs(profile, seeds=[cfg.seed]))[name]

    attention = dict(cfg.model_kw).get("attention") is not None
    if key == "fpr_table2" and attention:  # FP&R Figures 2 and 3
        return [("attention_maps", {}), ("attention_rank_curve", {"n_train": 1000, "n_test": 1000})]
    if key == "fpr_table4":  # FP&R Figure 4 and Table 4 (classifier: the natural row)
        out = [("gradient_maps", {})]
        if cfg.method != "st":
            out.append(("gradient_map_accuracy", {"classifier": row("natural (classifier)")}))
        return out
    if key == "fpr_attention":  # linear vs non-linear attention (IJCAI sec. 4.3)
        out = [("attention_maps", {})]
        if dict(cfg.model_kw).get("attention") == "nonlinear":
            out.append(("attention_comparison", {"other": row("natural, linear attention")}))
        return out
    if key == "aelf_table2":  # AELF Figures 2, 3 (our shift sweep beside it) and 4
        return [("normalized_gradient", {}), ("gradient_signs", {}), ("shift_sweep", {})]
    if key == "aelf_table3":  # AELF Figures 2 and 6 on CIFAR-10
        return [("normalized_gradient", {}), ("gradient_signs", {})]
    if key == "aelf_table6":
        return [("gradient_signs", {}), ("shift_sweep", {})]
    if key == "rlfat_table1b":  # RLFAT Figures 3-4 and Table 2
        return [("smoothgrad", {}), ("loss_sensitivity", {})]
    return []


ANALYSES = _analyses  # the table -> analyses mapping, for readers of the docs


# --------------------------------------------------------------------------- plan
@dataclass
class Step:
    """One unit of work: train a run, or evaluate (with the table's suite and transfer source)
    and analyse it for a table."""

    kind: str  # 'train' | 'evaluate'
    key: str
    label: str
    cfg: RunConfig
    suite: Optional[str] = None
    suite_changes: Dict[str, object] = field(default_factory=dict)
    source: Optional[RunConfig] = None
    analyses: List[Tuple[str, dict]] = field(default_factory=list)

    def to_json(self) -> str:
        def enc(v):
            return {"__cfg__": v.to_dict()} if isinstance(v, RunConfig) else v

        return json.dumps({"kind": self.kind, "key": self.key, "label": self.label, "cfg": self.cfg.to_dict(),
                           "suite": self.suite, "suite_changes": self.suite_changes,
                           "source": self.source.to_dict() if self.source else None,
                           "analyses": [[n, {k: enc(v) for k, v in kw.items()}] for n, kw in self.analyses]})

    @classmethod
    def from_json(cls, text: str) -> "Step":
        d = json.loads(text)

        def dec(v):
            return RunConfig.from_dict(v["__cfg__"]) if isinstance(v, dict) and "__cfg__" in v else v

        return cls(kind=d["kind"], key=d["key"], label=d["label"], cfg=RunConfig.from_dict(d["cfg"]),
                   suite=d["suite"], suite_changes=d["suite_changes"],
                   source=RunConfig.from_dict(d["source"]) if d["source"] else None,
                   analyses=[(n, {k: dec(v) for k, v in kw.items()}) for n, kw in d["analyses"]])

    def suite_obj(self):
        from . import evaluate

        return evaluate.get_suite(self.suite).replace(**self.suite_changes) if self.suite else None

    def describe(self) -> str:
        what = "train" if self.kind == "train" else ("evaluate+analyse" if self.suite else "analyse")
        return f"{what} [{self.key}] {self.label} seed {self.cfg.seed} ({self.cfg.run_id})"


_AVAILABLE: Dict[str, bool] = {}


def available(dataset: str) -> bool:
    """Whether `dataset` can be loaded here (a local archive, or torchvision files/download)."""
    if dataset not in _AVAILABLE:
        from . import data

        try:
            data.size(dataset, "test")
            _AVAILABLE[dataset] = True
        except Exception:
            _AVAILABLE[dataset] = False
    return _AVAILABLE[dataset]


def plan(keys: Sequence[str] = ORDER, profile: str = "cpu") -> List[Step]:
    """Every step of the campaign in execution order (see the module docstring); experiments
    whose dataset is not available here are left out."""
    from . import results

    steps: List[Step] = []
    trained: set = set()
    evaluated: set = set()
    for key in keys:
        exp = presets.get(key)
        cfgs = exp.configs(profile)
        if not cfgs or not available(cfgs[0][1].dataset):
            continue
        spec = results.TABLES.get(key)
        suite_name = spec.suite if spec else None
        changes = dict(spec.suite_changes.get(profile, {})) if spec else {}
        transfer = bool(spec) and spec.suite_at(profile).transfer
        seeds = exp.seeds(profile)
        labels = list(dict.fromkeys(label for label, _ in exp.runs))
        first = ROW_ORDER.get(key, ())
        labels.sort(key=lambda lab: first.index(lab) if lab in first else len(first))  # stable
        by = {(label, c.seed): c for label, c in cfgs}
        for label in labels:  # row by row, a row's seeds back to back (weights do not outlive a machine)
            for s in seeds:
                c = by[(label, s)]
                partner = exp.transfer_seed(profile, s)
                todo = [c]
                if transfer:
                    if (label, partner) not in by:  # a one-seed profile: the partner copy is trained too
                        by[(label, partner)] = c.replace(seed=partner)
                    todo.append(by[(label, partner)])
                for t in todo:
                    if t.run_id not in trained:
                        trained.add(t.run_id)
                        steps.append(Step("train", key, label if t is c or t.seed in seeds
                                          else f"{label} (transfer source)", t))
                mark = (key, c.run_id)
                analyses = _analyses(key, label, c, exp, profile)
                if mark in evaluated or (not suite_name and not analyses):
                    continue
                evaluated.add(mark)
                steps.append(Step("evaluate", key, label, c, suite_name, changes,
                                  by[(label, partner)] if transfer else None, analyses))
    return steps


# --------------------------------------------------------------------------- done?
def _run_view(cfg: RunConfig):
    from . import runs

    return runs.Run(cfg=cfg, dir=runs.run_dir(cfg), model=None)


def _analysis_done(cfg: RunConfig, analyses) -> bool:
    from . import analysis

    view = _run_view(cfg)
    return all(analysis.is_current(view, analysis.analysis_name(n, **kw)) for n, kw in analyses)


def is_done(step: Step) -> bool:
    """Whether the records already hold what `step` would produce."""
    from . import evaluate, runs

    if step.kind == "train":
        return (runs.run_dir(step.cfg) / "model.pt").exists() or runs.records_complete(step.cfg)
    if runs.weights_id(runs.run_dir(step.cfg)) is None:
        return False
    if step.suite:
        if step.source is not None and runs.weights_id(runs.run_dir(step.source)) is None:
            return False
        if not evaluate.result_path(_run_view(step.cfg), step.suite_obj(), source=step.source).exists():
            return False
    return _analysis_done(step.cfg, step.analyses)


def needs(step: Step) -> List[RunConfig]:
    """The runs whose weights `step` needs (an evaluation: its run, its transfer source, the runs
    its analyses compare with); `execute` trains any of them whose weights are not here."""
    if step.kind == "train":
        return []
    out = [step.cfg] + ([step.source] if step.source is not None else [])
    return out + [v for _, kw in step.analyses for v in kw.values() if isinstance(v, RunConfig)]


def weights_here(steps: Sequence[Step]) -> set:
    """Run ids among those `steps` train or need whose weights (model.pt) are on this machine."""
    from . import runs

    cfgs = {c.run_id: c for s in steps for c in [s.cfg] + needs(s)}
    return {r for r, c in cfgs.items() if (runs.run_dir(c) / "model.pt").exists()}


# --------------------------------------------------------------------------- execute
def execute(step: Step) -> dict:
    """Carry out one step in this process; returns what it measured."""
    from . import analysis, evaluate, runs

    t0 = time.perf_counter()
    out: dict = {"step": step.kind, "key": step.key, "label": step.label, "seed": step.cfg.seed,
                 "run_id": step.cfg.run_id}
    if step.kind == "train":
        run = runs.train(step.cfg)  # progress lines unless ROBUSTBOOK_QUIET
        out["train_seconds"] = round(sum(float(r.get("seconds", 0)) for r in run.metrics), 1)
        out["final"] = {k: run.final.get(k) for k in ("test_clean", "test_pgd", "loss")}
    else:
        def weights(cfg: RunConfig):  # loads, or retrains a run whose weights are elsewhere (epoch lines, timed)
            here, t = (runs.run_dir(cfg) / "model.pt").exists(), time.perf_counter()
            loaded = runs.train(cfg)
            if not here:
                out.setdefault("retrained", {})[cfg.run_id] = round(time.perf_counter() - t, 1)
            return loaded

        run = weights(step.cfg)
        if step.suite:
            source = weights(step.source) if step.source is not None else None
            res = evaluate.evaluate(run, step.suite_obj(), source=source)
            out["eval_seconds"] = evaluate.spent_seconds(res)
            out["accuracy"] = {k: round(e["accuracy"], 4) for k, e in res["results"].items() if e["role"] == "table"}
        for name, kw in step.analyses:
            kw = {k: (weights(v) if isinstance(v, RunConfig) else v) for k, v in kw.items()}
            analysis.analyse(run, name, **kw)
        out["analyses"] = [n for n, _ in step.analyses]
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def _refresh(keys: Sequence[str], profile: str) -> None:
    from . import results

    for key in dict.fromkeys(keys):
        if key in results.TABLES:
            results.store(results.collect(key, profile), directory=_results_dir())


def _tables_of(run_id: str, keys: Sequence[str], profile: str) -> List[str]:
    return [k for k in keys if any(c.run_id == run_id for _, c in presets.get(k).configs(profile))]


CHEAP_TRAIN_S = 600.0  # an evaluation may go first if the other runs it needs train within this


def _row(step: Step) -> Tuple[str, str]:
    return step.key, step.label.replace(" (transfer source)", "")


def _worth_now(step: Step, costs: Costs, present: set) -> bool:
    """Whether to carry out `step` (its run's weights are here) before the row under way: when
    each other run it needs and that is not here trains in at most half the time that retraining
    its run later would take, or in `CHEAP_TRAIN_S` (e.g. Table 4's gradient maps of Table 2's
    Madry runs need a natural classifier, about a third of a Madry run). A transfer source costs
    as much as its target: it is trained in its own row's order."""
    limit = max(CHEAP_TRAIN_S * costs.scale, 0.5 * costs.train(step.cfg))
    return all(c.run_id in present or costs.train(c) <= limit for c in needs(step))


def _pick(todo: List[Step], costs: Costs, left: Optional[float], started: Optional[Tuple[str, str]]):
    """The next step (or None) and the row under way: an evaluation whose weights are here first
    (see the module docstring), then the row under way, then the first row that fits in `left`
    seconds (None: no limit), rows with weights or a checkpoint here before the others; a
    started row is finished even if its estimate has grown."""
    present = weights_here(todo)
    row_left = costs.steps([t for t in todo if _row(t) == started], present) if started else 0.0
    train_step = {t.cfg.run_id: t for t in todo if t.kind == "train"}
    for s in todo:
        if s.kind == "evaluate" and s.cfg.run_id in present and _worth_now(s, costs, present):
            if left is None or costs.steps([s], present) + row_left <= left:
                missing = [c.run_id for c in needs(s) if c.run_id not in present and c.run_id in train_step]
                return (train_step[missing[0]] if missing else s), started  # a planned training is logged
    if started is not None and any(_row(t) == started for t in todo):
        return next(t for t in todo if _row(t) == started), started
    from . import runs

    of: Dict[Tuple[str, str], List[Step]] = {}
    for t in todo:
        of.setdefault(_row(t), []).append(t)

    def begun(r) -> bool:  # its weights or a checkpoint are here: finish it before they are lost
        return any(c.run_id in present or (t.kind == "train" and runs.resumable(c))
                   for t in of[r] for c in [t.cfg] + needs(t))

    for r in sorted(of, key=lambda r: not begun(r)):  # begun rows first, else plan order
        if left is None or costs.steps(of[r], present) <= left:
            return of[r][0], r
    return None, None


def run(keys: Sequence[str] = ORDER, profile: str = "cpu", max_steps: Optional[int] = None,
        inprocess: bool = False, hours: Optional[float] = None) -> int:
    """Carry out every step of the plan that is not done, each in a subprocess (`inprocess`:
    in this process, for tests), in the order of `_pick`; with `hours`, only rows that fit
    in that many hours from now are started. Returns the number of failed steps."""
    steps = plan(keys, profile)
    todo = [s for s in steps if not is_done(s)]
    print(f"campaign ({profile}): {len(steps)} steps, {len(steps) - len(todo)} done, {len(todo)} to go; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    slow = [s for s in todo if _needs_fast_bf16(s)]
    if slow:
        from . import device as device_mod

        todo = [s for s in todo if s not in slow]
        print(f"skipping {len(slow)} steps of bf16 runs ({', '.join(sorted({s.key for s in slow}))}): bf16 matmuls "
              f"run at {device_mod.bf16_speed('cpu'):.3f}x the fp32 speed on this CPU (no bf16 instructions); "
              "run them on a machine with AVX512-BF16/AMX or a GPU", flush=True)
    deadline = time.time() + hours * 3600 if hours else None
    total, failed, n, started = len(todo), 0, 0, None
    speed, tried = _Speed(), set()
    while not (max_steps and n >= max_steps):
        costs = Costs(steps, scale=speed.scale)  # re-read: the step just finished is the newest measurement
        # a step done at the start is pending again when weights it measured were retrained into
        # different ones (other hardware): an evaluation names its weights' hashes
        queued = {id(t) for t in todo} | {id(t) for t in slow} | tried
        stale = [s for s in costs.pending if id(s) not in queued]
        for s in stale:
            print(f"  {s.describe()}: its records measured weights that were retrained since; again", flush=True)
        todo += stale
        total += len(stale)
        if not todo:
            break
        step, started = _pick(todo, costs, None if deadline is None else deadline - time.time(), started)
        if step is None:
            print(f"stopping: no row left fits in the {(deadline - time.time()) / 3600:.2f} h left "
                  f"(--hours {hours}); {len(todo)} steps remain", flush=True)
            break
        todo.remove(step)
        tried.add(id(step))
        if is_done(step):  # a shared run finished by an earlier step
            continue
        n += 1
        t0, estimate = time.time(), costs.steps([step], weights_here([step])) / costs.scale
        if inprocess:
            try:
                rec, err = execute(step), []
            except Exception as exc:
                rec, err = None, [f"{type(exc).__name__}: {exc}"]
        else:
            print(f"[{n}/{total}] {step.describe()} ...", flush=True)
            rec, err = _subprocess_step(step, profile)
        if rec is None:
            failed += 1
            rec = {"step": step.kind, "key": step.key, "label": step.label, "seed": step.cfg.seed,
                   "run_id": step.cfg.run_id, "failed": True, "error": " | ".join(err)[-500:],
                   "seconds": round(time.time() - t0, 1)}
        rec["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        rec["estimated_seconds"] = round(estimate, 1)  # from the records, before this machine's speed
        if not rec.get("failed"):
            speed.add(estimate, time.time() - t0)
        from . import files

        log_path().parent.mkdir(parents=True, exist_ok=True)
        files.append_line(json.dumps(rec), log_path())
        try:
            _refresh(_tables_of(step.cfg.run_id, keys, profile), profile)
        except Exception as err:  # a broken results table must not stop the training
            print(f"  (results tables not refreshed: {type(err).__name__}: {err})", flush=True)
        status_note = "FAILED: " + rec["error"] if rec.get("failed") else \
            ", ".join(f"{k} {v}" for k, v in rec.items() if k in ("train_seconds", "eval_seconds", "final", "retrained"))
        print(f"[{n}/{total}] {step.describe()} {rec['seconds']:.0f} s (estimated {estimate:.0f} s; this machine "
              f"so far {speed.scale:.2f}x the estimates): {status_note}", flush=True)
    return failed


class _Speed:
    """How much slower (> 1) or faster this machine carries out steps than `Costs` estimates
    from the records: total seconds over total estimate of the steps done here, once they add
    up to `MIN_ESTIMATE_S` (short steps are mostly overhead), bounded to [1/4, 4]."""

    MIN_ESTIMATE_S = 600.0

    def __init__(self):
        self.estimated, self.took = 0.0, 0.0

    def add(self, estimate: float, seconds: float) -> None:
        self.estimated += estimate
        self.took += seconds

    @property
    def scale(self) -> float:
        if self.estimated < self.MIN_ESTIMATE_S:
            return 1.0
        return min(max(self.took / self.estimated, 0.25), 4.0)


def _needs_fast_bf16(step: Step) -> bool:
    """Whether `step` trains or evaluates a bf16 run (or crafts on one) on a CPU without fast bf16."""
    from . import device as device_mod

    return any(c is not None and c.precision == "bf16" and device_mod.slow_bf16(c.device)
               for c in (step.cfg, step.source))


def _subprocess_step(step: Step, profile: str):
    """Run `step` in a fresh interpreter, echoing its progress lines (epochs, attack sections)
    indented; returns (its JSON record or None, the last lines of its output)."""
    env = {**os.environ, "ROBUSTBOOK_PROGRESS": "lines", "PYTHONUNBUFFERED": "1"}
    env.pop("ROBUSTBOOK_QUIET", None)
    proc = subprocess.Popen([sys.executable, "-m", "robustbook.campaign", "--step", step.to_json(),
                             "--profile", profile], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    records, tail = [], collections.deque(maxlen=3)
    for line in proc.stdout:
        line = line.rstrip("\n")
        if line.startswith("{"):
            records.append(line)
        elif line.strip():
            tail.append(line.strip())
            print("    " + line, flush=True)
    rc = proc.wait()
    return (json.loads(records[-1]) if rc == 0 and records else None), list(tail)


# --------------------------------------------------------------------------- status
def _passes(cfg: RunConfig) -> float:
    from .executor import image_passes

    n = cfg.train_size
    if n is None:
        from . import data

        try:
            n = data.size(cfg.dataset, "train")
        except Exception:
            n = data.DATASETS[cfg.dataset][2][0]
    return image_passes(cfg.replace(train_size=n))


def _family(cfg: RunConfig, by_method: bool = False) -> str:
    """Runs that cost the same per image pass: one model; `by_method` also splits standard from
    adversarial training (per-epoch probe evaluation and overheads weigh far more on a standard
    run's few passes: a narrow-ResNet ST run took twice its adversarial-rate estimate)."""
    from . import methods

    kw = dict(cfg.model_kw)
    fam = f"{cfg.model}:{kw.get('filters', '')}:{kw.get('depth', '')}:{cfg.input_size or ''}"
    if cfg.precision != "fp32":
        fam += f":{cfg.precision}"
    if not by_method:
        return fam
    return fam + (":adv" if methods.get(cfg.method).adversarial else ":std")


# passes per second per model family before any run of it has finished (data/bench/latest.json:
# pgd_at training steps in fp32 on this machine, images/s x 6 passes); `Costs` scales them by how
# far finished runs of the same kind of training fell below them
_DEFAULT_PASSES_PER_S = {"madry_mnist_cnn": 345 * 6, "cnn_b": 120 * 6, "madry_resnet:narrow": 72 * 6,
                         "madry_resnet:wide3": 12 * 6, "wrn": 100 * 6}


# bf16 autocast over fp32 training steps, same file (train_pgd_at_ours_bf16_img_s / ..._fp32_img_s)
_BF16_SPEEDUP = {"madry_mnist_cnn": 600.6 / 345.0, "cnn_b": 130.7 / 70.5, "madry_resnet:narrow": 116.5 / 71.8,
                 "madry_resnet:wide3": 22.9 / 12.2}


def _suite_family(step: Step) -> tuple:
    """What an evaluation's cost depends on: its suite (with the profile's changes), data set,
    model and the model's arguments (a 3x wide ResNet costs more than the narrow one)."""
    c = step.cfg
    return (step.suite, json.dumps(step.suite_changes, sort_keys=True), c.dataset, c.model,
            json.dumps(c.model_kw, sort_keys=True, default=str))


def _bench_rate(cfg: RunConfig) -> float:
    """`cfg`'s model's bare training-step rate (passes per second) from the bench, in its precision
    (bf16 at the bench's bf16 speed-up; on a CPU without bf16 units such runs are skipped)."""
    kw = dict(cfg.model_kw)
    key = f"{cfg.model}:{kw.get('filters')}"
    rate = _DEFAULT_PASSES_PER_S.get(key, _DEFAULT_PASSES_PER_S.get(cfg.model, 400))
    if cfg.precision == "bf16":
        rate *= _BF16_SPEEDUP.get(key, _BF16_SPEEDUP.get(cfg.model, 1.0))
    return rate


class Costs:
    """Estimated seconds of the campaign's work on this machine, from the records: training
    from the measured seconds per image pass of finished runs of the same model family
    (before any has finished: the bench's bare step rate `_DEFAULT_PASSES_PER_S` times the share
    of it that finished runs of the same kind of training, standard or adversarial, reached; the
    bare rate leaves out probes and data handling, and a first MNIST ST run took 275 s against
    69 s estimated from it), retraining a recorded run at its typical
    seconds (median epoch x epochs: epochs slowed by tests sharing the cores do not count; a Madry
    run slowed so once cost 3257 s against a typical 2180 s, and its row never fit a session),
    evaluation at the mean seconds of finished evaluations with its suite on its model (a suite
    costs about the same whatever the run's training, `_suite_family`), else at the
    evaluation/training ratio (total over total) of all finished evaluations (the 30% budget
    before any), each stored analysis at `ANALYSIS_SHARE` of its run's training."""

    ANALYSIS_SHARE = 0.02

    def __init__(self, steps: Sequence[Step], scale: float = 1.0):
        """`scale`: this machine's seconds per estimated second, measured on the steps it has
        carried out (hosts differ between sessions by 2x; the records come from all of them)."""
        from . import evaluate, methods, results

        self.scale = scale
        self.runs: Dict[str, dict] = {}
        rate: Dict[str, List[float]] = {}
        reached: Dict[bool, List[float]] = {}  # adversarial? -> measured rate / bench rate
        for s in steps:
            if s.kind != "train" or s.cfg.run_id in self.runs:
                continue
            st = results.status(s.cfg)
            info = {"state": st["state"], "seconds": st["train_seconds"], "typical": st["typical_seconds"],
                    "done": st["epochs_done"] / st["epochs"], "passes": _passes(s.cfg)}
            if st["state"] == "trained" and st["typical_seconds"] > 0:
                measured = info["passes"] / st["typical_seconds"]
                for key in (_family(s.cfg), _family(s.cfg, by_method=True)):
                    rate.setdefault(key, []).append(measured)
                reached.setdefault(methods.get(s.cfg.method).adversarial, []).append(measured / _bench_rate(s.cfg))
            self.runs[s.cfg.run_id] = info
        self.rate = {k: sum(v) / len(v) for k, v in rate.items()}
        self.reached = {k: sum(v) / len(v) for k, v in reached.items()}
        self.pending = [s for s in steps if not is_done(s)]  # in plan order
        pending = {id(s) for s in self.pending}
        self.evals: Dict[Tuple[str, str], Tuple[bool, Optional[float]]] = {}
        spent: Dict[tuple, List[Tuple[float, float]]] = {}  # suite family -> (evaluation, training) seconds
        for s in steps:
            if s.kind == "evaluate" and s.suite:
                done, secs = id(s) not in pending, None
                if done:
                    path = evaluate.result_path(_run_view(s.cfg), s.suite_obj(), source=s.source)
                    secs = evaluate.spent_seconds(json.loads(path.read_text())) if path.exists() else None
                    tr = self.runs.get(s.cfg.run_id, {}).get("typical")
                    if secs and tr:
                        spent.setdefault(_suite_family(s), []).append((secs, tr))
                self.evals[(s.key, s.cfg.run_id)] = (done, secs)
        pairs = [p for v in spent.values() for p in v]
        # an evaluation costs what its suite costs on its model (the same attacks on the same images,
        # whatever the training: a natural MNIST run trains in less time than its attacks take), so
        # finished evaluations of the suite and model give its mean seconds; one with none is
        # estimated from its run's training at the ratio (total over total) of all evaluations
        self.eval_ratio = sum(e for e, _ in pairs) / sum(t for _, t in pairs) if pairs else 0.3
        self.eval_seconds = {k: sum(e for e, _ in v) / len(v) for k, v in spent.items()}

    def passes_per_second(self, cfg: RunConfig) -> float:
        for key in (_family(cfg, by_method=True), _family(cfg)):  # the same kind of training first
            if key in self.rate:
                return self.rate[key]
        from . import methods

        share = self.reached.get(methods.get(cfg.method).adversarial)
        if share is None and self.reached:  # only the other kind of training measured yet
            share = min(self.reached.values())
        return _bench_rate(cfg) * (share or 1.0)

    def train(self, cfg: RunConfig) -> float:
        """Seconds to train `cfg` from the start (a recorded run: its typical seconds)."""
        info = self.runs.get(cfg.run_id)
        if info and info["state"] == "trained" and info["typical"] > 0:
            return info["typical"] * self.scale
        return (info["passes"] if info else _passes(cfg)) / self.passes_per_second(cfg) * self.scale

    def train_left(self, cfg: RunConfig) -> float:
        """Seconds still to train `cfg` (0 for a trained run; the share of epochs done is subtracted)."""
        from . import runs

        info = self.runs.get(cfg.run_id)
        if info and info["state"] == "trained":
            return 0.0
        return self.train(cfg) * (1.0 - (info["done"] if info and runs.resumable(cfg) else 0.0))

    def evaluation(self, step: Step) -> float:
        """Seconds to evaluate `step`'s run with its table's suite (`eval_seconds`, else `eval_ratio`)."""
        if _suite_family(step) in self.eval_seconds:
            return self.eval_seconds[_suite_family(step)] * self.scale
        return self.train(step.cfg) * self.eval_ratio

    def steps(self, steps: Sequence[Step], present: set) -> float:
        """Seconds to carry out `steps` in order on a machine holding the weights of the run ids
        in `present`, retraining (once) every run a step needs whose weights are not there."""
        have, total = set(present), 0.0
        for s in steps:
            if s.kind == "train":
                total += self.train_left(s.cfg)
                have.add(s.cfg.run_id)
                continue
            for c in needs(s):
                if c.run_id not in have:
                    total += self.train(c)
                    have.add(c.run_id)
            total += self.train(s.cfg) * self.ANALYSIS_SHARE * len(s.analyses) + (self.evaluation(s) if s.suite else 0.0)
        return total


def status(keys: Sequence[str] = ORDER, profile: str = "cpu") -> dict:
    """Per table: runs trained / evaluated / total; CPU-hours spent (from the run records)
    and left (`Costs`: training still to do, with its evaluation; evaluations of trained runs)."""
    from . import runs

    steps = plan(keys, profile)
    costs = Costs(steps)
    seen, evals, pending = costs.runs, costs.evals, costs.pending
    present = weights_here(pending)
    tables = {}
    for key in keys:
        ks = [s for s in steps if s.key == key]
        if not ks:
            tables[key] = {"available": False}
            continue
        run_ids = list(dict.fromkeys(s.cfg.run_id for s in ks if s.kind == "train"))
        exp_cfgs = [c for _, c in presets.get(key).configs(profile)]
        row = {"available": True, "runs": len(exp_cfgs),
               "trained": sum(1 for c in exp_cfgs if seen.get(c.run_id, {}).get("state") == "trained"
                              or runs.records_complete(c)),
               "evaluated": sum(1 for (k, r), (d, _) in evals.items() if k == key and d),
               "to_evaluate": sum(1 for (k, r) in evals if k == key)}
        spent = sum(seen[r]["seconds"] for r in run_ids) + sum(secs or 0.0 for (k, _), (_, secs) in evals.items()
                                                              if k == key)
        left = costs.steps([s for s in pending if s.key == key], present)
        row["skipped_here"] = "no fast bf16 on this CPU" if any(_needs_fast_bf16(s) for s in ks) else ""
        row["cpu_hours_spent"] = round(spent / 3600, 2)
        row["cpu_hours_left"] = round(left / 3600, 2)
        tables[key] = row
    runnable = [s for s in pending if not _needs_fast_bf16(s)]
    total_left = round(costs.steps(pending, present) / 3600, 2)  # a run shared by tables counted once
    total_spent = sum(t.get("cpu_hours_spent", 0) for t in tables.values())
    return {"profile": profile, "tables": tables, "cpu_hours_spent": round(total_spent, 2),
            "cpu_hours_left": round(total_left, 2),
            "cpu_hours_left_here": round(costs.steps(runnable, present) / 3600, 2),
            "recent_speed": recent_speed(), "eval_over_train": round(costs.eval_ratio, 3),
            "passes_per_second": {k: round(v) for k, v in costs.rate.items()}}


def recent_speed(path: Optional[Path] = None, min_estimate_s: float = 3600.0) -> Optional[float]:
    """Seconds taken per estimated second over the newest logged steps whose estimates add up
    to `min_estimate_s` (the host the campaign ran on last; hosts differ between sessions by 2x),
    or None before enough steps logged their estimate."""
    from . import files

    path = Path(path) if path else log_path()
    took = estimated = 0.0
    for r in reversed(files.read_jsonl(path) if path.exists() else []):
        if r.get("failed") or not r.get("estimated_seconds"):
            continue
        took, estimated = took + float(r["seconds"]), estimated + float(r["estimated_seconds"])
        if estimated >= min_estimate_s:
            return round(took / estimated, 2)
    return None


def _timestamp(text: Optional[str]) -> float:
    """Seconds since the epoch of a record's local ISO time stamp (-inf when missing)."""
    import datetime

    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return float("-inf")


def _stored_evaluations(profile: str) -> Dict[Tuple[str, str], dict]:
    """(table, run id) -> the evaluation record the table's suite stored for that run."""
    from . import evaluate

    out = {}
    for s in plan(ORDER, profile):
        if s.kind == "evaluate" and s.suite:
            path = evaluate.result_path(_run_view(s.cfg), s.suite_obj(), source=s.source)
            if path.exists():
                out[(s.key, s.cfg.run_id)] = json.loads(path.read_text())
    return out


def cost_table(path: Optional[Path] = None, profile: str = "cpu"):
    """What the campaign's CPU time went to, from its committed log (`log_path()`): one row per
    evaluated run (table, row, seed, run id) with the training seconds of the weights it measured
    (retrained within the step when they were not on the machine, else its train record, else its
    metrics), its evaluation seconds, their ratio (issue 10's budget: at most 0.3), the seconds
    the step spent retraining weights that were not on the machine (its run's, its transfer
    source's, the runs its analyses compare with), so the cost of lost weights is visible, and
    the rest (analyses, loading). A DataFrame (empty without a log)."""
    import pandas as pd

    from . import evaluate, files
    from .runs import runs_root

    path = Path(path) if path else log_path()
    recs = [r for r in files.read_jsonl(path) if not r.get("failed")] if path.exists() else []
    trained = {r["run_id"]: r.get("train_seconds") for r in recs if r["step"] == "train"}

    def train_seconds(run_id):
        if trained.get(run_id):
            return trained[run_id]
        rows = files.read_jsonl(runs_root() / run_id / "metrics.jsonl")
        return round(sum(float(m.get("seconds", 0.0)) for m in rows), 1) or None

    stored = _stored_evaluations(profile) if recs else {}

    def eval_seconds(r) -> float:
        # a step that resumed an interrupted evaluation logged only its own process's seconds
        # before the partial file kept the time; the record's sections show the whole cost
        rec, logged = stored.get((r["key"], r["run_id"])), float(r["eval_seconds"])
        if rec and abs(_timestamp(rec.get("created")) - _timestamp(r.get("finished"))) < 900:
            return max(logged, evaluate.spent_seconds(rec))
        return logged

    out = []
    for r in recs:
        if r["step"] != "evaluate" or r.get("eval_seconds") is None:
            continue
        # weights retrained within the step (a fresh clone) are the weights it measured: their
        # training is the run's, and the rest of the step's time is its evaluation's overhead
        retrained = r.get("retrained", {})
        tr, ev = retrained.get(r["run_id"]) or train_seconds(r["run_id"]), eval_seconds(r)
        other = float(r.get("seconds", ev)) - ev - sum(retrained.values())
        out.append({"table": r["key"], "row": r["label"], "seed": r["seed"], "run id": r["run_id"],
                    "train (s)": tr, "eval (s)": round(ev), "eval / train": round(ev / tr, 2) if tr else None,
                    "retrained (s)": round(sum(retrained.values())), "other (s)": round(max(other, 0.0)),
                    "finished": r.get("finished", "")})
    return pd.DataFrame(out, columns=["table", "row", "seed", "run id", "train (s)", "eval (s)", "eval / train",
                                      "retrained (s)", "other (s)", "finished"])


def cost_caption(table, path: Optional[Path] = None) -> str:
    """One sentence under `cost_table`: the CPU-hours the log holds and the evaluation budget kept."""
    from . import files

    path = Path(path) if path else log_path()
    hours = sum(float(r.get("seconds", 0.0)) for r in files.read_jsonl(path)) / 3600 if path.exists() else 0.0
    ratio = table["eval / train"].dropna()
    if not len(ratio):
        return f"{hours:.1f} CPU-hours logged; no run evaluated yet."
    both = table.dropna(subset=["eval / train"]).groupby("table", sort=False)[["eval (s)", "train (s)"]].sum()
    per_table = ", ".join(f"{k} {r['eval (s)'] / r['train (s)']:.2f}" for k, r in both.iterrows())
    return (f"{hours:.1f} CPU-hours logged by the campaign; {len(table)} evaluated runs, evaluation / training "
            f"{ratio.mean():.2f} on average ({ratio.min():.2f}-{ratio.max():.2f}), {int((ratio <= 0.3).sum())} of "
            f"{len(ratio)} within the 30% budget; per table (all its evaluations over the training of the runs "
            f"they measured; a row's transfer set is crafted once, in one seed's evaluation) {per_table}; "
            f"{table['retrained (s)'].sum() / 3600:.1f} h of the evaluation steps "
            f"went to retraining weights that were not on the machine, {table['other (s)'].sum() / 3600:.1f} h to "
            "analyses and loading.")


def format_status(st: dict) -> str:
    lines = [f"{'table':<16}{'runs':>6}{'trained':>9}{'evaluated':>11}{'h spent':>9}{'h left':>8}"]
    for key, t in st["tables"].items():
        if not t.get("available"):
            lines.append(f"{key:<16}  dataset not available offline")
            continue
        lines.append(f"{key:<16}{t['runs']:>6}{t['trained']:>9}{t['evaluated']:>6}/{t['to_evaluate']:<4}"
                     f"{t['cpu_hours_spent']:>9.2f}{t['cpu_hours_left']:>8.2f}"
                     + (f"  (skipped here: {t['skipped_here']})" if t.get("skipped_here") else ""))
    if not any(t.get("available") for t in st["tables"].values()):
        lines.append("no data set is available: set ROBUSTBOOK_DATA to a directory of the .npz archives "
                     "(e.g. ../shared/data, see the README) or let torchvision download them")
    lines.append(f"total: {st['cpu_hours_spent']:.2f} CPU-hours spent, {st['cpu_hours_left']:.2f} left "
                 f"(evaluation/training measured {st['eval_over_train']:.2f}); shared runs count in every table")
    if st["cpu_hours_left_here"] != st["cpu_hours_left"]:
        lines.append(f"  of which {st['cpu_hours_left_here']:.2f} can run on this CPU (the rest needs fast bf16)")
    if st.get("recent_speed"):
        lines.append(f"  at the speed of the campaign's latest steps ({st['recent_speed']:.2f}x these estimates, "
                     f"which come from all hosts' records): {st['cpu_hours_left_here'] * st['recent_speed']:.1f} h")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", choices=presets.PROFILE_NAMES)
    ap.add_argument("--only", nargs="*", default=None, help="experiment keys (default: the whole plan)")
    ap.add_argument("--status", action="store_true", help="print done / remaining per table and stop")
    ap.add_argument("--plan", action="store_true", help="print the ordered steps and stop")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--hours", type=float, default=None,
                    help="this machine stops in HOURS: start only rows whose estimated cost fits (weights "
                         "are not committed, so a run trained but not evaluated before the stop is lost)")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.hours is not None and not args.hours > 0:
        ap.error(f"--hours must be a positive number of hours (the time this machine has left), got {args.hours}")
    keys = tuple(args.only) if args.only else ORDER
    unknown = [k for k in keys if k not in presets.EXPERIMENTS]
    if unknown:
        ap.error(f"unknown experiment(s) {unknown}; choose from {sorted(presets.EXPERIMENTS)}")
    if args.step:
        print(json.dumps(execute(Step.from_json(args.step))), flush=True)
        return 0
    if args.status:
        print(format_status(status(keys, args.profile)))
        return 0
    if args.plan:
        for i, s in enumerate(plan(keys, args.profile)):
            print(f"{i + 1:4d} {'done ' if is_done(s) else 'to do'} {s.describe()}")
        return 0
    return 1 if run(keys, args.profile, args.max_steps, hours=args.hours) else 0


if __name__ == "__main__":
    raise SystemExit(main())
