"""The papermill batch (``gtvision.reproduce``): its parameter files, its selection of runs, skipping what is
done, and the rule that every file an executed notebook in ``papermill_runs/`` reads is committed."""
from __future__ import annotations

import glob
import json
import os
import subprocess
from pathlib import Path

import pytest

from gtvision import reproduce
from gtvision.agent.config import VARIANTS
from gtvision.scenarios import SCENARIO_NAMES

ROOT = Path(__file__).resolve().parent.parent
READ_PARAMETERS = ("run_dir", "driver", "results", "ablations")
"""Parameters whose value the notebooks read (a run directory, a checkpoint, globs of tables)."""


def _declared(notebook: str) -> set[str]:
    return set(reproduce.declared_parameters(ROOT / "notebooks" / f"{notebook}.ipynb"))


# ---------------------------------------------------------------------------- the parameter files

def test_every_scenario_and_variant_has_a_parameter_file():
    names = {p.stem for p in (ROOT / "papermill_runs" / "params").glob("*.yaml")}
    runs = {r.name for r in reproduce.all_runs()}
    assert runs <= names, f"runs without a YAML: {sorted(runs - names)}"
    assert set(reproduce.VARIANTS) == set(VARIANTS)
    assert {"tokyo", "spa", "sarthe", "ablation_no_rnn", "ablation_asymmetric", "baseline_gt_sophy"} <= runs


@pytest.mark.parametrize("run", reproduce.all_runs(), ids=lambda r: r.name)
def test_yaml_names_only_parameters_its_notebooks_declare(run):
    params = reproduce.read_yaml(run.params_file())
    declared = set().union(*(_declared(nb) for nb in run.notebooks))
    assert set(params) <= declared, f"{run.name}: not declared by {run.notebooks}: {set(params) - declared}"
    if run.kind != "figures":
        assert params["scenario"] in SCENARIO_NAMES
    if run.kind == "variant":  # the variant the run is named after is the one it trains
        assert run.name.split("_", 1)[1] == params["variant"]
        assert params["driver"] == params["train_dir"], "06 races what 04 trained"
    # what a run writes stays inside its own directory
    for key in ("train_dir", "eval_dir"):
        if key in params:
            assert params[key].startswith(f"papermill_runs/{run.name}/")


def test_ablation_yamls_hold_the_ablation_schedule():
    for v in VARIANTS:
        if v == "gt_sophy":
            continue
        p = reproduce.read_yaml(ROOT / "papermill_runs" / "params" / f"ablation_{v}.yaml")
        assert p["train_preset"] == "cpu" and p["train_overrides"]["train.epochs"] == 200
        assert p["train_overrides"].get("train.reset_epoch") == (None if v == "no_reset" else 125)
        budget = (p["select_episodes"], p["select_seed"], p["episodes"], p["seed"], p["laps"])
        assert budget == (8, 1000, 64, 0, 4)
        assert p["train_minutes"] is None and p["threads"] == 1


def test_overlay_parses_and_is_declared():
    overlay = reproduce.read_yaml(ROOT / "papermill_runs" / "params" / "quick.yaml")
    reproduce.check_overlay(overlay, ROOT / "notebooks")
    with pytest.raises(ValueError, match="trian_minutes.*valid:.*train_minutes"):
        reproduce.check_overlay({"trian_minutes": 1}, ROOT / "notebooks")


def test_notebooks_keep_one_parameters_cell():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, path.name
        outputs = [c for c in cells if c["cell_type"] == "code" and c.get("outputs")]
        assert not outputs, f"{path.name} is committed with outputs"


# ---------------------------------------------------------------------------- selection

def test_plan_selects_a_subset_in_order():
    runs = reproduce.plan(["tokyo"], ["no_rnn"])
    assert [r.name for r in runs] == ["ablation_no_rnn", "tokyo", "figure_6"]
    assert runs[1].notebooks == reproduce.SCENARIO_NOTEBOOKS
    assert [r.name for r in reproduce.plan(["tokyo"])] == ["tokyo"]  # scenarios only: no variant
    assert [r.name for r in reproduce.plan(None, ["gt_sophy"])] == ["baseline_gt_sophy"]  # not in Figure 6
    assert len(reproduce.plan()) == len(reproduce.all_runs())
    assert [r.name for r in reproduce.plan(["tokyo,spa"], ["none"])] == ["tokyo", "spa"]
    only = reproduce.plan(["all"], None, ["04", "06_evaluation.ipynb"])
    assert {r.notebooks for r in only} == {("04_asymmetric_qrsac", "06_evaluation")}


@pytest.mark.parametrize("kwargs, message", [
    ({"scenarios": ["tokio"]}, r"unknown scenario 'tokio'; valid: tokyo, spa, sarthe"),
    ({"variants": ["no_rnm"]}, r"unknown variant 'no_rnm'; valid: asymmetric, .*no_rnn"),
    ({"notebooks": ["08"]}, r"unknown notebook '08'; valid: 01_simulator"),
])
def test_unknown_names_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        reproduce.plan(**kwargs)


def test_cli_reports_unknown_names(capsys):
    assert reproduce.main(["--scenarios", "monza", "--list"]) == 2
    assert "unknown scenario 'monza'; valid: tokyo" in capsys.readouterr().err


def test_parse_set_reads_yaml_values():
    assert reproduce.parse_set(["train_minutes=1", "laps=null", "results=[a, b]", "variant=no_rnn"]) == {
        "train_minutes": 1, "laps": None, "results": ["a", "b"], "variant": "no_rnn"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        reproduce.parse_set(["train_minutes"])


def test_malformed_yaml_is_refused(tmp_path):
    (tmp_path / "bad.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        reproduce.read_yaml(tmp_path / "bad.yaml")


# ---------------------------------------------------------------------------- execution (a tiny notebook)

def _tiny_notebook(path: Path, fail: bool = False):
    """A notebook with a parameters cell (``x``, ``out_dir``) that appends a line to ``out_dir/calls.txt``."""
    import nbformat
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('x = 1\nout_dir = "out"')
    params.metadata["tags"] = ["parameters"]
    body = ("from pathlib import Path\nPath(out_dir).mkdir(parents=True, exist_ok=True)\n"
            "with open(Path(out_dir) / 'calls.txt', 'a') as f:\n    f.write(f'{x}\\n')\n")
    nb.cells = [params, nbformat.v4.new_code_cell(body + ("raise RuntimeError('boom')" if fail else ""))]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def test_execute_skips_what_is_done_and_force_reruns(tmp_path):
    _tiny_notebook(tmp_path / "tiny.ipynb")
    out, calls = tmp_path / "run" / "tiny.ipynb", tmp_path / "o" / "calls.txt"
    params = {"x": 7, "out_dir": str(tmp_path / "o")}
    assert not reproduce.is_done(out)
    assert reproduce.execute(tmp_path / "tiny.ipynb", out, params, cwd=tmp_path) == "done"
    assert reproduce.is_done(out) and reproduce.executed_parameters(out)["x"] == 7
    assert reproduce.execute(tmp_path / "tiny.ipynb", out, params, cwd=tmp_path) == "skipped"
    assert calls.read_text() == "7\n"
    assert reproduce.execute(tmp_path / "tiny.ipynb", out, params, force=True, cwd=tmp_path) == "done"
    assert calls.read_text() == "7\n7\n"


def test_executed_notebooks_carry_no_progress_bar_text(tmp_path):
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from tqdm.auto import tqdm\nfor _ in tqdm(range(50), mininterval=0): pass\n"
                                          "import sys\nprint('kept', file=sys.stderr)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(tmp_path / "bars.ipynb"))
    reproduce.execute(tmp_path / "bars.ipynb", tmp_path / "out.ipynb", {}, cwd=tmp_path)
    outputs = nbformat.read(str(tmp_path / "out.ipynb"), as_version=4).cells[0].outputs
    assert [o.get("text") for o in outputs if o.get("name") == "stderr"] == ["kept\n"]  # no bar, other stderr kept
    assert "TQDM_DISABLE" not in os.environ


def test_a_failed_notebook_is_not_done(tmp_path):
    _tiny_notebook(tmp_path / "bad.ipynb", fail=True)
    out = tmp_path / "bad_run.ipynb"
    with pytest.raises(Exception, match="boom"):
        reproduce.execute(tmp_path / "bad.ipynb", out, {"x": 1}, cwd=tmp_path)
    assert out.exists() and not reproduce.is_done(out)


def test_reproduce_runs_a_batch_and_records_it(tmp_path):
    """A fake batch (one figures run, its notebook replaced by the tiny one): overlays reach the notebook, the
    record names them, a second call skips, and a YAML key no notebook declares is refused before running."""
    nbs, params = tmp_path / "notebooks", tmp_path / "params"
    nbs.mkdir()
    params.mkdir()
    _tiny_notebook(nbs / "07_figures.ipynb")
    (params / "figure_6.yaml").write_text("x: 2\n")
    run = reproduce.Run("figure_6", "figures", ("07_figures",))
    overlays = [{"source": "--set", "values": {"x": 3}}]
    kw = dict(params_dir=params, notebooks_dir=nbs, out_root=tmp_path / "out", cwd=tmp_path, progress=False)
    assert reproduce.reproduce([run], overlays, **kw) == {"figure_6/07_figures": "done"}
    assert (tmp_path / "out" / "figure_6" / "07_figures" / "calls.txt").read_text() == "3\n"
    record = json.loads((tmp_path / "out" / "figure_6" / "reproduce.json").read_text())
    assert record["overlays"] == overlays and record["notebooks"]["07_figures"]["parameters"]["x"] == 3
    assert reproduce.reproduce([run], overlays, **kw) == {"figure_6/07_figures": "skipped"}
    (params / "figure_6.yaml").write_text("x: 2\ny: 1\n")
    with pytest.raises(ValueError, match=r"parameter\(s\) y declared by none of its notebooks"):
        reproduce.reproduce([run], **kw)


# ---------------------------------------------------------------------------- committed inputs

def _committed() -> set[str] | None:
    try:
        out = subprocess.run(["git", "ls-files", "-z", "papermill_runs"], cwd=ROOT, capture_output=True,
                             check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return {p for p in out.stdout.decode().split("\0") if p}


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)


def _is_committed(path: str, committed: set[str]) -> bool:
    """A committed file, or a directory holding committed files."""
    return path.rstrip("/") in committed or any(c.startswith(path.rstrip("/") + "/") for c in committed)


def uncommitted_inputs(notebook: Path, committed: set[str]) -> list[str]:
    """What an executed notebook's papermill parameters name under ``papermill_runs/`` (a file, a directory,
    a glob) and is not committed; and a path it reads that is outside ``papermill_runs/``."""
    parameters = json.loads(notebook.read_text())["metadata"].get("papermill", {}).get("parameters", {})
    missing = []
    for key, value in parameters.items():
        for s in _strings(value):
            if key in READ_PARAMETERS and s != "biai" and not s.startswith("papermill_runs/"):
                missing.append(f"{key}={s} (outside papermill_runs/)")
            if not s.startswith("papermill_runs/"):
                continue
            if glob.has_magic(s):
                on_disk = {str(Path(p).relative_to(ROOT)) for p in glob.glob(str(ROOT / s), recursive=True)}
                missing += [f"{key}={s}: {p}" for p in sorted(on_disk) if not _is_committed(p, committed)]
            elif not _is_committed(s, committed):
                missing.append(f"{key}={s}")
    return missing


def test_every_input_of_an_executed_notebook_is_committed():
    committed = _committed()
    if committed is None:
        pytest.skip("not a git checkout")
    executed = sorted(p for p in committed if p.endswith(".ipynb"))
    assert executed, "no executed notebook committed in papermill_runs/"
    missing = {nb: m for nb in executed if (m := uncommitted_inputs(ROOT / nb, committed))}
    assert not missing, f"executed notebooks read what is not committed: {missing}"


def test_the_input_check_finds_a_missing_run(tmp_path):
    nb = tmp_path / "x.ipynb"
    nb.write_text(json.dumps({"metadata": {"papermill": {"parameters": {
        "run_dir": "papermill_runs/runs/lost", "driver": "runs/tokyo_cpu_ramp",
        "results": ["papermill_runs/eval/*.csv"], "out_dir": "outputs/x"}}}}))
    committed = {"papermill_runs/eval/eval_tokyo_biai.csv"}
    missing = uncommitted_inputs(nb, committed)
    assert "run_dir=papermill_runs/runs/lost" in missing
    assert "driver=runs/tokyo_cpu_ramp (outside papermill_runs/)" in missing
    assert "results=papermill_runs/eval/*.csv: papermill_runs/eval/eval_spa_biai.csv" in missing
