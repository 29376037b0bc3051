"""The papermill batch: every numbered notebook, executed with the parameters of each scenario and ablation.

``papermill_runs/params/`` holds one YAML per run (plain notebook parameters, each also usable with
``papermill -f``); this runner executes the notebooks of each run into ``papermill_runs/<run>/``, where the
notebooks also write what they train and race::

    run                     YAML                                   notebooks
    tokyo, spa, sarthe      params/<scenario>.yaml                 01 02 03 04 06 07  (simulator to figures)
    ablation_<variant>      params/ablation_<variant>.yaml         04 06  (paper V-C: train, select, race)
    baseline_gt_sophy       params/baseline_gt_sophy.yaml          04 06  (the GT Sophy baseline of IV-C)
    figure_6                params/figure_6.yaml                   07  (Figure 6 from the ablations' tables)

Variant runs go first (a scenario's Figure 1 draws the baseline's table), then the scenario runs, then
``figure_6`` (run whenever an ablation is selected). Each notebook gets the run's parameters that it declares
(its ``parameters`` cell), and ``out_dir=papermill_runs/<run>/<notebook>``. An executed notebook that
completed without error is not run again (``--force`` re-runs it; a training run already in place is then
resumed, not restarted: delete ``papermill_runs/<run>/runs/`` to train afresh). Budget overlays
(``--set KEY=VALUE``, ``-f OVERLAY.yaml``) change the parameters of every selected run that declares them, and
are recorded with what each notebook was run with in ``papermill_runs/<run>/reproduce.json``.

Usage (from anywhere; notebooks run with the repository root as working directory)::

    python -m gtvision.reproduce                                   # everything (days on a laptop)
    python -m gtvision.reproduce --scenarios tokyo --variants no_rnn
    python -m gtvision.reproduce --variants all --jobs 2           # the ablation study and the baseline
    python -m gtvision.reproduce --scenarios tokyo -f papermill_runs/params/quick.yaml --set train_minutes=1
    python -m gtvision.reproduce --list                            # the runs, their notebooks and status

Selecting nothing runs everything; selecting scenarios only runs no variant, and the reverse.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import yaml

from .scenarios import SCENARIO_NAMES

REPO_ROOT = Path(__file__).resolve().parent.parent
PARAMS_DIR = REPO_ROOT / "papermill_runs" / "params"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
OUT_ROOT = REPO_ROOT / "papermill_runs"

VARIANTS = ("asymmetric", "symmetric_critic", "zero_hidden", "hidden_128", "no_rnn", "no_aug", "no_reset",
            "gt_sophy")
"""The agent, its V-C ablations and the GT Sophy baseline (``gtvision.agent.config.VARIANTS``; a test keeps
the two equal, so that this module imports without torch)."""
BASELINES = ("gt_sophy",)
"""Variants that are baselines, not ablations: their run is ``baseline_<variant>``, not in Figure 6."""

SCENARIO_NOTEBOOKS = ("01_simulator", "02_observations", "03_rewards", "04_asymmetric_qrsac", "06_evaluation",
                      "07_figures")
VARIANT_NOTEBOOKS = ("04_asymmetric_qrsac", "06_evaluation")
FIGURE_NOTEBOOKS = ("07_figures",)
NOTEBOOKS = ("01_simulator", "02_observations", "03_rewards", "04_asymmetric_qrsac",
             "05_distributed_training", "06_evaluation", "07_figures")
"""Every numbered notebook; ``05_distributed_training`` (Ray, scenario-free) is in no run of the batch."""
FIGURE_6_RUN = "figure_6"


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of the batch: a YAML of parameters and the notebooks executed with it, in order."""

    name: str
    """Directory under the output root, and the YAML's stem (``tokyo``, ``ablation_no_rnn``, ...)."""
    kind: str
    """'scenario', 'variant' or 'figures'."""
    notebooks: tuple[str, ...]
    """Notebook stems (``04_asymmetric_qrsac``), executed in this order."""

    def params_file(self, params_dir: str | Path = PARAMS_DIR) -> Path:
        return Path(params_dir) / f"{self.name}.yaml"


def variant_run_name(variant: str) -> str:
    """``ablation_<variant>``, or ``baseline_<variant>`` for a baseline."""
    return f"{'baseline' if variant in BASELINES else 'ablation'}_{variant}"


def all_runs() -> list[Run]:
    """Every run of the batch, in the order they execute."""
    return ([Run(variant_run_name(v), "variant", VARIANT_NOTEBOOKS) for v in VARIANTS]
            + [Run(s, "scenario", SCENARIO_NOTEBOOKS) for s in SCENARIO_NAMES]
            + [Run(FIGURE_6_RUN, "figures", FIGURE_NOTEBOOKS)])


def _names(given: list[str] | None, valid: tuple[str, ...], what: str) -> list[str] | None:
    """``given`` (names, comma- or space-separated; 'all'; 'none') checked against ``valid``; None if not
    given."""
    if given is None:
        return None
    names = [n for g in given for n in g.replace(",", " ").split()]
    if names == ["all"]:
        return list(valid)
    if names in ([], ["none"]):
        return []
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(map(repr, unknown))}; valid: {', '.join(valid)} "
                         "(or all, none)")
    return [n for n in valid if n in names]


def notebook_stem(name: str) -> str:
    """A notebook named by its stem, file name or number (``04``, ``04_asymmetric_qrsac(.ipynb)``)."""
    stem = Path(name).stem if name.endswith(".ipynb") else name
    matches = [n for n in NOTEBOOKS if n == stem or n.split("_")[0] == stem]
    if len(matches) != 1:
        raise ValueError(f"unknown notebook {name!r}; valid: {', '.join(NOTEBOOKS)} (or their numbers)")
    return matches[0]


def plan(scenarios: list[str] | None = None, variants: list[str] | None = None,
         notebooks: list[str] | None = None) -> list[Run]:
    """The runs selected: all of them when neither ``scenarios`` nor ``variants`` is given; otherwise those
    named (the other list defaults to none), plus ``figure_6`` when an ablation is among them. ``notebooks``
    keeps only those notebooks of each run (runs left with none are dropped). Unknown names raise
    ValueError."""
    scenarios = _names(scenarios, SCENARIO_NAMES, "scenario")
    variants = _names(variants, VARIANTS, "variant")
    keep = None
    if notebooks is not None:
        keep = {notebook_stem(n) for g in notebooks for n in g.replace(",", " ").split()}
    if scenarios is None and variants is None:
        scenarios, variants = list(SCENARIO_NAMES), list(VARIANTS)
    scenarios, variants = scenarios or [], variants or []
    wanted = {variant_run_name(v) for v in variants} | set(scenarios)
    if any(v not in BASELINES for v in variants):
        wanted.add(FIGURE_6_RUN)
    runs = []
    for run in all_runs():
        if run.name in wanted:
            nbs = tuple(n for n in run.notebooks if keep is None or n in keep)
            if nbs:
                runs.append(dataclasses.replace(run, notebooks=nbs))
    return runs


# ---------------------------------------------------------------------------- parameters

def read_yaml(path: str | Path) -> dict:
    """A YAML file of parameters: a mapping of names to values (an empty file is an empty mapping)."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"no parameter file {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: malformed YAML ({e})") from e
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ValueError(f"{path}: expected a mapping of parameter names to values, "
                         f"got {type(data).__name__}")
    return data


def parse_set(pairs: list[str]) -> dict:
    """``KEY=VALUE`` strings -> a dict, each value read as YAML (``1``, ``0.5``, ``null``, ``[a, b]``,
    ``text``)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set wants KEY=VALUE, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def _papermill():
    try:
        import papermill
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError('the batch needs papermill: pip install -e ".[test]"') from e
    return papermill


def declared_parameters(notebook: str | Path) -> dict:
    """The parameters a notebook declares in its ``parameters`` cell: name -> default (as source text)."""
    pm = _papermill()
    return {name: p["default"] for name, p in pm.inspect_notebook(str(notebook)).items()}


def run_parameters(run: Run, params: dict, overlay: dict, notebooks_dir: Path,
                   out_root: Path) -> dict[str, dict]:
    """Per notebook of ``run``: the parameters it is executed with (the run's and the overlay's that it
    declares, and its ``out_dir``). A run parameter that no notebook of the run declares raises ValueError (a
    typo would otherwise be silently ignored); an overlay one only has to be declared by some notebook of the
    batch."""
    declared = {nb: declared_parameters(notebooks_dir / f"{nb}.ipynb") for nb in run.notebooks}
    known = set().union(*declared.values())
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"{run.name}: parameter(s) {', '.join(unknown)} declared by none of its notebooks "
                         f"({', '.join(run.notebooks)}); valid: {', '.join(sorted(known))}")
    merged = {**params, **overlay}
    return {nb: {**{k: v for k, v in merged.items() if k in names},
                 "out_dir": str(_relative(out_root / run.name / nb))}
            for nb, names in declared.items()}


def check_overlay(overlay: dict, notebooks_dir: Path):
    """Refuse overlay parameters that no notebook declares."""
    known = set().union(*(declared_parameters(notebooks_dir / f"{nb}.ipynb") for nb in NOTEBOOKS
                          if (notebooks_dir / f"{nb}.ipynb").exists()))
    unknown = sorted(set(overlay) - known)
    if unknown:
        raise ValueError(f"overlay parameter(s) {', '.join(unknown)} declared by no notebook; valid: "
                         f"{', '.join(sorted(known))}")


def _relative(path: Path) -> Path:
    """``path`` relative to the repository root when inside it (how the notebooks, run there, see it)."""
    try:
        return path.resolve().relative_to(REPO_ROOT)
    except ValueError:
        return path.resolve()


# ---------------------------------------------------------------------------- execution

def is_done(path: str | Path) -> bool:
    """An executed notebook that papermill finished without an error in any cell."""
    path = Path(path)
    if not path.exists():
        return False
    try:
        nb = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    meta = nb.get("metadata", {}).get("papermill")
    if not meta or meta.get("exception") or not meta.get("end_time"):
        return False
    return all(c.get("metadata", {}).get("papermill", {}).get("status", "completed") == "completed"
               for c in nb.get("cells", []) if c.get("cell_type") == "code")


def executed_parameters(path: str | Path) -> dict:
    """The parameters papermill recorded in an executed notebook."""
    return json.loads(Path(path).read_text()).get("metadata", {}).get("papermill", {}).get("parameters", {})


KERNEL_ENV = {"TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore:IProgress not found"}
"""Environment of the kernels that execute notebooks (:func:`execute`): no tqdm progress bars, and not tqdm's
warning that it cannot draw them as widgets."""


def execute(notebook: str | Path, output: str | Path, parameters: dict, force: bool = False,
            cwd: str | Path = REPO_ROOT) -> str:
    """Execute ``notebook`` into ``output`` with ``parameters`` (papermill, kernel working directory ``cwd``).

    Returns 'skipped' when ``output`` is already a completed run (unless ``force``), 'done' when it ran now.
    A failing cell raises papermill's PapermillExecutionError; the executed copy, up to the error, is kept.
    The kernel runs with :data:`KERNEL_ENV`: progress bars, which a kernel without widgets prints as hundreds of
    stderr outputs, stay out of the executed copy (interactive Jupyter shows them)."""
    pm = _papermill()
    output = Path(output)
    if not force and is_done(output):
        return "skipped"
    output.parent.mkdir(parents=True, exist_ok=True)
    env = dict(KERNEL_ENV)
    if os.environ.get("PYTHONWARNINGS"):  # keep the user's warning filters
        env["PYTHONWARNINGS"] = f"{os.environ['PYTHONWARNINGS']},{env['PYTHONWARNINGS']}"
    with mock.patch.dict(os.environ, env):  # the kernel inherits this process's environment; restored after
        pm.execute_notebook(str(notebook), str(output), parameters=parameters, cwd=str(cwd), progress_bar=False,
                            log_output=False, request_save_on_cell_execute=True)
    return "done"


def _record(out_root: Path, run: Run, entry: dict, overlays: list[dict], params_file: Path):
    """Add one notebook's entry to ``<out_root>/<run>/reproduce.json``."""
    path = out_root / run.name / "reproduce.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    record.update({"run": run.name, "params_file": str(_relative(params_file)), "overlays": overlays})
    record.setdefault("notebooks", {})[entry.pop("notebook")] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")


def reproduce(runs: list[Run], overlays: list[dict] | None = None, force: bool = False, jobs: int = 1,
              params_dir: str | Path = PARAMS_DIR, notebooks_dir: str | Path = NOTEBOOKS_DIR,
              out_root: str | Path = OUT_ROOT, cwd: str | Path = REPO_ROOT, progress: bool = True,
              dry_run: bool = False) -> dict[str, str]:
    """Execute ``runs`` (see :func:`plan`); ``overlays``: dicts of parameters applied over every run's YAML in
    order, each ``{"source": ..., "values": {...}}``. Returns ``{"<run>/<notebook>": status}`` with status
    'done', 'skipped' (already done), 'failed' or 'not run' (an earlier notebook of its run failed)."""
    from tqdm import tqdm

    overlays = overlays or []
    params_dir, notebooks_dir, out_root = Path(params_dir), Path(notebooks_dir), Path(out_root)
    overlay = {k: v for o in overlays for k, v in o["values"].items()}
    check_overlay(overlay, notebooks_dir)
    # everything is checked before anything runs: a typo must not surface after hours of training
    tasks = {run.name: run_parameters(run, read_yaml(run.params_file(params_dir)), overlay, notebooks_dir,
                                      out_root) for run in runs}
    if dry_run:
        for run in runs:
            for nb, p in tasks[run.name].items():
                out = out_root / run.name / f"{nb}.ipynb"
                state = "done" if is_done(out) else "to run"
                print(f"{run.name}/{nb}.ipynb [{state}]: {json.dumps(p, default=str)}")
        return {}
    status: dict[str, str] = {}
    bar = tqdm(total=sum(len(r.notebooks) for r in runs), unit="notebook", disable=not progress,
               file=sys.stdout, dynamic_ncols=True)

    def one_run(run: Run):
        failed = False
        for nb in run.notebooks:
            key = f"{run.name}/{nb}"
            if failed:
                status[key] = "not run"
                bar.update()
                continue
            out = out_root / run.name / f"{nb}.ipynb"
            params = tasks[run.name][nb]
            bar.set_description(key)
            if not force and is_done(out) and executed_parameters(out) != json.loads(json.dumps(params)):
                tqdm.write(f"{key}: done with other parameters than now (see {_relative(out)}); "
                           "--force to re-run", file=sys.stdout)
            t0 = time.time()
            try:
                status[key] = execute(notebooks_dir / f"{nb}.ipynb", out, params, force, cwd)
            except Exception as e:  # noqa: BLE001  (the executed copy shows the failing cell)
                status[key], failed = "failed", True
                last = str(e).strip().splitlines()[-1][:200] if str(e).strip() else ""
                tqdm.write(f"{key}: FAILED ({type(e).__name__}: {last}); see {_relative(out)}",
                           file=sys.stdout)
            seconds = time.time() - t0
            if status[key] != "skipped":
                _record(out_root, run, {"notebook": nb, "status": status[key], "seconds": round(seconds, 1),
                                        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(
                                            timespec="seconds"),
                                        "parameters": params}, overlays, run.params_file(params_dir))
                if status[key] == "done":
                    tqdm.write(f"{key}: done in {seconds / 60:.1f} min -> {_relative(out)}", file=sys.stdout)
            else:
                tqdm.write(f"{key}: already done, skipped", file=sys.stdout)
            bar.update()

    for kind in ("variant", "scenario", "figures"):  # a scenario's Figure 1 reads the baseline's table
        phase = [r for r in runs if r.kind == kind]
        if jobs > 1 and len(phase) > 1:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                list(pool.map(one_run, phase))
        else:
            for run in phase:
                one_run(run)
    bar.close()
    return status


def _table(runs: list[Run], out_root: Path, params_dir: Path) -> str:
    rows = []
    for run in runs:
        states = ["done" if is_done(out_root / run.name / f"{nb}.ipynb") else "-" for nb in run.notebooks]
        rows.append(f"{run.name:<26} {str(_relative(run.params_file(params_dir))):<48} "
                    + " ".join(f"{nb.split('_')[0]}:{s}" for nb, s in zip(run.notebooks, states)))
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gtvision.reproduce", description=__doc__.split("\n\n")[0],
                                epilog="Runs: " + ", ".join(r.name for r in all_runs()) + ".")
    p.add_argument("--scenarios", nargs="+", default=None, metavar="S",
                   help=f"scenario runs: {', '.join(SCENARIO_NAMES)}, all or none")
    p.add_argument("--variants", nargs="+", default=None, metavar="V",
                   help=f"variant runs (ablations, baseline): {', '.join(VARIANTS)}, all or none")
    p.add_argument("--notebooks", nargs="+", default=None, metavar="NB",
                   help="only these notebooks of each run (stems or numbers: 04 06)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="overlay a parameter on every selected run that declares it (value read as YAML)")
    p.add_argument("-f", "--overlay", action="append", default=[], metavar="YAML",
                   help="overlay the parameters of this YAML (e.g. papermill_runs/params/quick.yaml)")
    p.add_argument("--force", action="store_true", help="execute notebooks that already completed again")
    p.add_argument("--jobs", type=int, default=1, help="runs executed at once (each one notebook at a time)")
    p.add_argument("--list", action="store_true", help="list the selected runs and what is done, run nothing")
    p.add_argument("--dry-run", action="store_true", help="print each notebook's parameters, run nothing")
    p.add_argument("--params-dir", default=str(PARAMS_DIR), help="directory of the runs' YAML files")
    p.add_argument("--notebooks-dir", default=str(NOTEBOOKS_DIR))
    p.add_argument("--out", default=str(OUT_ROOT), help="output root: runs go to OUT/<run>/")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        runs = plan(args.scenarios, args.variants, args.notebooks)
        overlays = [{"source": str(_relative(Path(f))), "values": read_yaml(f)} for f in args.overlay]
        if args.set:
            overlays.append({"source": "--set", "values": parse_set(args.set)})
        if args.list:
            print(_table(runs, Path(args.out), Path(args.params_dir)))
            return 0
        status = reproduce(runs, overlays, args.force, args.jobs, args.params_dir, args.notebooks_dir,
                           args.out, progress=not args.quiet, dry_run=args.dry_run)
        if args.dry_run:
            return 0
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed = [k for k, s in status.items() if s in ("failed", "not run")]
    counts = {s: sum(v == s for v in status.values()) for s in ("done", "skipped", "failed", "not run")}
    print(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing to run")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
