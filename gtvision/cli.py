"""The ``gtvision`` command line: ``race`` (built-in AI races), ``train``, ``evaluate``, ``select``, ``video``,
``play`` and ``bench``. ``gtvision train``'s options are made from :class:`gtvision.training.RunConfig` (its
fields, defaults and docstrings)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _threads(n: int | None = None):
    import torch
    torch.set_num_threads(n if n else max(1, os.cpu_count() or 1))


def cmd_race(args) -> int:
    from .sim.race import run_race, write_race_video

    _threads()
    record = args.video is not None
    log = run_race(args.scenario, laps=args.laps, num_races=args.races, num_cars=args.cars, seed=args.seed,
                   device=args.device, bop=args.bop, record=record, progress=not args.quiet,
                   max_time_s=args.max_time)
    r = log.results.copy()
    cols = ["race", "place", "grid_slot", "finished", "finish_time_s", "best_lap_s", "car_contacts",
            "car_contact_time_s", "wall_time_s", "off_course_time_s"]
    print(r.sort_values(["race", "place"])[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    s = log.summary()
    print(f"\n{log.scenario}: {s['races']} race(s) x {args.cars} cars, {args.laps} laps | finished "
          f"{s['finished']}/{s['cars']} | car contacts {s['car_contacts']} ({s['car_contact_time_s']:.1f} s) | "
          f"wall {s['wall_time_s']:.1f} s (most for a car {s['wall_time_max_s']:.1f} s) | off-course "
          f"{s['off_course_time_s']:.1f} s (most {s['off_course_time_max_s']:.1f} s) | best lap "
          f"{s['best_lap_s']:.2f} s (QSS minimum {s['qss_lap_s']:.2f} s)")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        r.to_csv(Path(args.out) / f"race_{log.scenario}.csv", index=False)
    if record:
        Path(args.video).parent.mkdir(parents=True, exist_ok=True)
        path = write_race_video(log, args.video, speedup=args.video_speedup, progress=not args.quiet)
        print(f"video: {path}")
    return 0


def _key_values(pairs: list[str], option: str) -> dict:
    """``KEY=VALUE`` strings -> a dict; values read as JSON when they parse (0, 240.0, null, [1, 2])."""
    import json
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{option} wants KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def cmd_train(args) -> int:
    import dataclasses

    from .checkpoints import read_run_config
    from .training import RunConfig, train

    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig) if getattr(args, f.name) is not None}
    for name, option in (("env_kwargs", "--env-arg"), ("overrides", "--set")):
        if name in given:
            given[name] = _key_values(given[name], option)
    if args.resume:
        # the stored configuration, with what was given on the command line (budgets may change; anything
        # else that differs is refused by train())
        saved = read_run_config(args.resume)["run"]
        known = {f.name for f in dataclasses.fields(RunConfig)}
        unknown = sorted(set(saved) - known)
        if unknown:
            raise ValueError(f"--resume {args.resume}: its config.json names fields this version lacks: "
                             f"{', '.join(unknown)}")
        fields = {**saved, **given}
        out, resume = args.resume, True
    else:
        if not args.out:
            raise ValueError("--out DIR is required (or --resume DIR)")
        fields, out, resume = given, args.out, False
    if fields.get("threads") is None:
        fields["threads"] = max(1, os.cpu_count() or 1)
    out, history = train(RunConfig(**fields), out, progress=not args.quiet, resume=resume)
    last = history[-1] if history else {}
    print(f"{out}: epoch {last.get('epoch', 0)}, {last.get('charts/env_steps', 0)} env steps, "
          f"{last.get('charts/updates', 0)} updates, {last.get('charts/wall_s', 0.0) / 60:.1f} min of training")
    return 0


_RUN_OPTIONS = {"max_minutes": "--minutes", "env_kwargs": "--env-arg", "overrides": "--set"}
"""RunConfig fields whose option is not ``--field-name``."""
_RUN_METAVARS = {"env_kwargs": "KEY=VALUE", "overrides": "SECTION.FIELD=VALUE"}


def field_docs(cls) -> dict[str, str]:
    """The docstring under each field of dataclass ``cls`` (the attribute docstrings of its source)."""
    import ast
    import inspect
    import textwrap

    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    docs = {}
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def add_run_config_options(parser: argparse.ArgumentParser):
    """One option per :class:`gtvision.training.RunConfig` field, with its docstring and default as help. Every
    option defaults to None (not given), so that a resumed run keeps its stored values; dict fields take
    repeated ``KEY=VALUE``, booleans are flags, fields with a fixed set of values list them."""
    import dataclasses
    import typing

    from .training import RUN_CHOICES, RunConfig

    hints, docs = typing.get_type_hints(RunConfig), field_docs(RunConfig)
    for f in dataclasses.fields(RunConfig):
        option = _RUN_OPTIONS.get(f.name, "--" + f.name.replace("_", "-"))
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        doc = docs.get(f.name, "").replace("``", "").replace("%", "%%")
        help_ = f"{doc} (default: {default})" if default not in ({}, None) else doc
        kinds = [a for a in typing.get_args(hints[f.name]) if a is not type(None)] or [hints[f.name]]
        kind = kinds[0]
        if kind is dict:
            parser.add_argument(option, dest=f.name, action="append", default=None,
                                metavar=_RUN_METAVARS.get(f.name, "KEY=VALUE"), help=help_ + " (repeatable)")
        elif kind is bool:
            parser.add_argument(option, dest=f.name, action="store_const", const=True, default=None, help=help_)
        else:
            parser.add_argument(option, dest=f.name, type=kind, default=None, choices=RUN_CHOICES.get(f.name),
                                help=help_)


def cmd_evaluate(args) -> int:
    import numpy as np

    from .env.episodes import MAX_OPPONENTS
    from .evaluation import evaluate, results_name, summarize, write_results

    _threads(args.threads)
    driver = args.checkpoint or args.driver
    table = evaluate(driver, args.scenario, args.episodes, args.seed, args.device, laps=args.laps,
                     progress=not args.quiet, opponents=args.opponents, max_time_s=args.max_time)
    name = results_name(driver, args.scenario)
    full_grid = args.opponents is None or args.opponents == MAX_OPPONENTS
    if not full_grid:
        name += f"_opponents{args.opponents}"
    # the races' settings, as `gtvision select` records them: a checkpoint's table is not raced again by select
    races = ({"scenario": args.scenario, "episodes": args.episodes, "seed": args.seed, "laps": args.laps}
             if full_grid and args.checkpoint and args.max_time is None else None)
    csv, _ = write_results(table, args.out, name, races)
    s = summarize(table)
    if len(table) <= 20:  # a few races: the table itself
        cols = ["episode", "place", "margin_m", "car_collision_time_s", "wall_time_s", "progress_m", "race_time_s",
                "finished", "best_clean_lap_s"] + [c for c in table.columns if c.startswith("lap_")]
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    if args.opponents == 0:  # a time trial: no margin or place to speak of
        laps = table.filter(regex=r"^lap_\d+_s$").to_numpy(float)
        clean = table["best_clean_lap_s"].to_numpy(float)

        def best_of(x):
            return f"{np.nanmin(x):.2f} s" if x.size and np.isfinite(x).any() else "none"

        print(f"{args.scenario}, {s['episodes']} time trial(s), driver {driver}: finished {s['finished']}/"
              f"{s['episodes']} | laps done {int(np.isfinite(laps).sum())} | best lap {best_of(laps)} | best clean "
              f"lap {best_of(clean)} | progress mean "
              f"{table['progress_m'].mean():.0f} m | wall {s['wall_time_mean_s']:.2f} s\n-> {csv}")
        return 0
    print(f"{args.scenario}, {s['episodes']} race(s), driver {driver}: win rate {s['win_rate']:.2f} | margin mean "
          f"{s['margin_mean_m']:.1f} m, median {s['margin_median_m']:.1f} m | place mean {s['place_mean']:.2f} | "
          f"collision {s['car_collision_time_mean_s']:.2f} s | wall {s['wall_time_mean_s']:.2f} s | "
          f"finished {s['finished']}/{s['episodes']}\n-> {csv}")
    return 0


def cmd_select(args) -> int:
    from .evaluation import select_from_run

    _threads(args.threads)
    if args.human_table is not None:
        import pandas as pd

        humans = pd.read_csv(args.human_table)
        if humans.empty or "car_collision_time_s" not in humans:
            raise ValueError(f"--human-table {args.human_table}: no car_collision_time_s rows (a table of "
                             "`gtvision play` or `gtvision evaluate` is expected)")
        args.max_collision = float(humans["car_collision_time_s"].max())
        print(f"threshold: the worst human car-collision time in {args.human_table}, {args.max_collision:.2f} s")
    choice, summary = select_from_run(args.run, args.scenario, args.episodes, args.max_collision, args.seed,
                                      args.laps, out=args.out, device=args.device, progress=not args.quiet,
                                      from_epoch=args.from_epoch)
    cols = ["checkpoint", "margin_mean_m", "car_collision_time_mean_s", "place_mean", "win_rate", "finished",
            "eligible", "selected"]
    print(summary[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if choice is None:
        print(f"no checkpoint has a mean collision time under {args.max_collision} s")
        return 1
    selected = Path(args.run) / "checkpoints" / choice
    print(f"selected: {selected} (best mean margin among those under {args.max_collision} s of car collision)")
    if args.export is not None:
        from .checkpoints import TEACHER_PARTS

        # a run's checkpoint goes with its critics (a teacher); a DAgger round (RUN/distill) has only its actor
        return _export(selected, args.export, ("actor",), optional=TEACHER_PARTS)
    return 0


def cmd_video(args) -> int:
    from .evaluation import write_video

    _threads(args.threads)
    path = write_video(args.checkpoint or args.driver, args.scenario, args.out, laps=args.laps, seed=args.seed,
                       max_time_s=args.max_time, speedup=args.speedup, progress=not args.quiet)
    print(f"video: {path}")
    return 0


def cmd_export(args) -> int:
    from .checkpoints import TEACHER_PARTS

    return _export(args.checkpoint, args.out, TEACHER_PARTS if args.with_critics else ("actor",),
                   layers=_key_values(args.set, "--set"), ensemble=tuple(args.ensemble), half=args.half,
                   compass_from=args.compass_from, seen_layers_races=args.fit_seen_layers,
                   seen_layers_seed=args.seen_layers_seed)


def _export(checkpoint, out, parts: tuple[str, ...], optional: tuple[str, ...] = (), layers: dict | None = None,
            ensemble: tuple[str, ...] = (), half: bool = False, compass_from: str | None = None,
            seen_layers_races: int = 0, seen_layers_seed: int | None = None) -> int:
    import json

    from .checkpoints import CONFIG, SEEN_LAYERS_SEED, export

    seen_layers_seed = SEEN_LAYERS_SEED if seen_layers_seed is None else seen_layers_seed
    final = export(checkpoint, out, parts, optional, layers, ensemble, half, progress=True, compass_from=compass_from,
                   seen_layers_races=seen_layers_races, seen_layers_seed=seen_layers_seed)
    exported = json.loads((Path(out) / CONFIG).read_text())["exported_from"]
    size = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
    print(f"{checkpoint} -> {final} ({size / 2**20:.1f} MiB: {', '.join(exported['parts'])} and the run's "
          "configuration)")
    if "compass" in exported:
        c = exported["compass"]
        if "from" in c:
            print(f"the reflex's compass: {c['from']}'s (trained there, {c.get('seconds', '?')} s)")
        else:
            print(f"the reflex's compass: {c['frames']} frames of {c['scenario']}, {c['epochs']} epochs, "
                  f"{c['seconds']} s (count them in the training time); on {c['held_out_frames']} held-out frames the "
                  f"sign of cos psi is right {c['held_out_cos_right']:.1%}, of sin psi (the side) "
                  f"{c['held_out_sin_right']:.1%}")
    if seen_layers_races:
        c = exported["seen_layers"]
        print(f"seen layers: {c['races']} races of seed {c['race_seed']} ({c['race_seconds']} s) and {c['epochs']} epochs "
              f"on {c['steps']} steps ({c['seconds']} s; count both in the training time); on {c['held_out_steps']} "
              f"held-out steps they lift where the gap keeper does {c['held_out_ceiling_found']:.0%} of the time, "
              f"steer where the side keeper does {c['held_out_steer_found']:.0%}")
    return 0


def cmd_play(args) -> int:
    from .play import play

    _threads(args.threads)
    row = play(args.scenario, name=args.name, laps=args.laps, seed=args.seed, out=args.out)
    r = row.iloc[0]
    print(f"{args.scenario}: place {r['place']}, margin {r['margin_m']:.1f} m, collisions {r['car_collision_time_s']:.1f} s"
          f" -> {args.out}/eval_{args.scenario}_human.csv")
    return 0


def _opponent_counts(values: list[str]) -> list[int | None]:
    """``--opponents`` of a benchmark: counts 0..19, or 'curriculum' (None)."""
    from .env.episodes import MAX_OPPONENTS

    out = []
    for v in values:
        if v == "curriculum":
            out.append(None)
        elif v.isdigit() and int(v) <= MAX_OPPONENTS:
            out.append(int(v))
        else:
            raise ValueError(f"--opponents: {v!r} is neither 0..{MAX_OPPONENTS} nor 'curriculum'")
    return out


def cmd_bench(args) -> int:
    import torch

    _threads(args.threads)
    if args.variant is None:
        args.variant = "asymmetric" if args.what == "update" else "gt_sophy"
    if args.races is None:
        args.races = {"sim": [64, 256, 1024, 2048], "act": [100]}.get(args.what, [64, 256])
    if args.steps is None:
        args.steps = 5 if args.what == "act" else 20
    if args.what == "sim":
        from .bench import bench_sim
        if args.processes is None:
            args.processes = (os.cpu_count() or 1) if args.device == "cpu" else 1
        rows = bench_sim(races=args.races, scenario=args.scenario, steps=args.steps, device=args.device,
                         carracing_seconds=args.carracing_seconds, compile=args.compile, processes=args.processes)
        ref = rows[0]["carracing_steps_per_s"]
        print(f"gymnasium CarRacing-v3: {ref:.0f} steps/s" if ref else
              "gymnasium CarRacing-v3: not measured (pip install 'gymnasium[box2d]')")
        if args.processes > 1:
            print(f"the races split over {args.processes} worker processes, "
                  f"{max(1, torch.get_num_threads() // args.processes)} thread(s) each")
        print(f"{'races':>6} {'agent-steps/s':>14} {'x CarRacing':>12} {'sim ms':>8} {'render ms':>10} {'BIAI ms':>8}")
        for row in rows:
            ratio = f"{row['ratio_vs_carracing']:.1f}" if row["ratio_vs_carracing"] else "-"
            print(f"{row['races']:>6} {row['agent_steps_per_s']:>14.0f} {ratio:>12} {row['sim_ms_per_step']:>8.1f} "
                  f"{row['render_ms_per_step']:>10.1f} {row['biai_ms_per_step']:>8.1f}")
        return 0
    if args.what == "env":
        from .bench import bench_env
        opponents = _opponent_counts(args.opponents)
        rows = bench_env(races=args.races, scenario=args.scenario, steps=args.steps, device=args.device,
                         compile=args.compile, opponents=opponents, render_image=not args.no_image)
        print(f"{args.scenario}, median agent-step of each, the two alternating"
              + (", no image rendered (a learner that reads none)" if args.no_image else "")
              + "; target: the environment adds at most 20% to the bare simulator")
        print(f"{'races':>6} {'opponents':>10} {'sim steps/s':>12} {'env steps/s':>12} {'sim ms':>8} {'env ms':>8} "
              f"{'overhead':>9}")
        for row in rows:
            print(f"{row['races']:>6} {row['opponents']:>10} {row['sim_agent_steps_per_s']:>12.0f} "
                  f"{row['env_agent_steps_per_s']:>12.0f} {row['sim_ms_per_step']:>8.1f} "
                  f"{row['env_ms_per_step']:>8.1f} {100 * row['overhead']:>8.1f}%")
        return 0
    if args.what == "learner":
        from .bench import bench_learner
        res = bench_learner(device=args.device)
        print(f"dense float32 matmul (2048^3): {res['matmul_gflops']:.1f} GFLOP/s")
        print(f"{'preset':>7} {'parameters':>11} {'batch':>32} {'GFLOP/update':>13} {'update s':>9} "
              f"{'updates/s':>10} {'x FLOP bound':>13}")
        for r in res["rows"]:
            print(f"{r['preset']:>7} {r['parameters']:>11,} {r['batch']:>32} {r['gflop_per_update']:>13.1f} "
                  f"{r['update_s']:>9.3f} {r['updates_per_s']:>10.2f} {r['x_lower_bound']:>13.2f}")
        return 0
    if args.what == "act":
        from .bench import bench_act
        if args.checkpoint is None:
            raise ValueError("bench act times an exported vision agent: give --checkpoint AGENT "
                             "(e.g. papermill_runs/agents/tokyo_vision)")
        res = bench_act(args.checkpoint, races=args.races[0], steps=args.steps, rounds=args.rounds,
                        scenario=args.scenario, device=args.device, seed=args.seed)
        print(f"{res['checkpoint']}, {res['races']} races, {res['device']}, {res['encoders']} image encoder(s): a race "
              f"step (simulator, rendering, networks, safety layers) under each setting, blocks of {args.steps} "
              f"steps in turn, median of {args.rounds} rounds; * the agent as exported")
        print(f"{'image encoders':>26} {'step ms':>8} {'x float32':>10}")
        for r in res["rows"]:
            print(f"{r['choice']:>26} {r['step_ms']:>8.1f} {r['speedup']:>10.2f}{' *' if r['exported'] else ''}")
        return 0
    if args.what == "update":
        from .bench import bench_update
        res = bench_update(args.preset, args.variant, rounds=args.rounds, device=args.device,
                           seed=args.seed)
        print(f"{res['preset']} preset, {res['variant']}, batch {res['batch']}, {res['device']}: an update under each "
              "choice next to the preset's, blocks of 4 updates in turn, median of "
              f"{args.rounds} rounds; rows: trained rows per second of each network")
        print(f"{'choice':>28} {'update ms':>10} {'x preset':>9} {'critic rows/s':>14} {'actor rows/s':>13}  set")
        for r in res["rows"]:
            print(f"{r['choice']:>28} {r['update_s'] * 1000:>10.1f} {r['speedup']:>9.2f} "
                  f"{r['critic_rows_per_s']:>14.0f} {r['actor_rows_per_s']:>13.0f}  {r['set'] or '-'}")
        return 0
    if args.what == "training":
        from .bench import bench_training
        opponents = _opponent_counts(args.opponents)
        res = bench_training(args.preset, args.variant, _key_values(args.set, "--set"), opponents, args.epochs,
                             args.scenario, args.device, args.seed)
        u = res["update"]
        print(f"{args.scenario}, {res['preset']} preset, {res['variant']}"
              + (f", {' '.join(args.set)}" if args.set else "")
              + f"; the update alone ({u['batch']}): {u['update_s'] * 1000:.1f} ms, {1 / u['update_s']:.1f} updates/s")
        print(f"{'opponents':>10} {'env steps/s':>12} {'updates/s':>10} {'x update alone':>15} {'collection':>11}")
        for r in res["rows"]:
            print(f"{r['opponents']:>10} {r['env_steps_per_s']:>12.1f} {r['updates_per_s']:>10.1f} "
                  f"{r['x_update_only']:>15.2f} {100 * r['collection_share']:>10.1f}%")
        return 0
    if args.what == "learning":
        import time

        from .bench_learning import bench_learning
        out = args.out or f"runs/bench_learning_{time.strftime('%Y%m%d-%H%M%S')}"
        tables = bench_learning(out, args.scenario, args.minutes, args.window, args.preset, args.variant,
                                _key_values(args.set, "--set"), args.seed, sb3=not args.no_sb3)
        print(f"{args.scenario} alone (gtvision.bench_learning.LEARNING_ENV), {args.minutes:g} min of training each, "
              f"one thread each, side by side; ours: {args.preset} preset, {args.variant}"
              + (f", {' '.join(args.set)}" if args.set else ""))
        for name, t in tables.items():
            print(f"\n{name}")
            print(t.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
        print(f"\n-> {out}/learning.csv, {out}/learning.png")
        return 0
    raise ValueError(f"unknown benchmark {args.what!r}; valid: sim, env, learner, update, training, learning")


def build_parser() -> argparse.ArgumentParser:
    from .scenarios import SCENARIO_NAMES

    p = argparse.ArgumentParser(prog="gtvision", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("race", help="race a grid of built-in AI cars, print the results, write a video")
    r.add_argument("--scenario", default="tokyo", choices=SCENARIO_NAMES)
    r.add_argument("--laps", type=int, default=4)
    r.add_argument("--races", type=int, default=1, help="races run in parallel")
    r.add_argument("--cars", type=int, default=20)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--bop", action="store_true", help="balance of performance: +-25%% power and mass")
    r.add_argument("--max-time", type=float, default=None, help="stop the race after this many seconds")
    r.add_argument("--device", default="cpu")
    r.add_argument("--video", default=None, help="write an MP4/GIF of race 0 (ego view + map) here")
    r.add_argument("--video-speedup", type=int, default=2, help="keep every n-th 10 Hz frame")
    r.add_argument("--out", default=None, help="directory for the results CSV")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=cmd_race)

    from .env.episodes import MAX_OPPONENTS

    t = sub.add_parser("train", help="train the QR-SAC agent on a scenario or any gymnasium id")
    add_run_config_options(t)
    t.add_argument("--out", default=None, help="run directory (must not hold a run already)")
    t.add_argument("--resume", default=None, metavar="DIR",
                   help="continue the run in DIR from its newest checkpoint (--total-steps / --minutes may grow)")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="4-lap races from the back of a 20-car grid (paper IV-C), batched")
    who = e.add_mutually_exclusive_group()
    who.add_argument("--checkpoint", default=None, help="a run's checkpoint directory (or a run directory: its newest)")
    who.add_argument("--driver", default="biai", choices=["biai"], help="a built-in driver in the agent's seat")
    e.add_argument("--scenario", default="tokyo", choices=SCENARIO_NAMES)
    e.add_argument("--episodes", type=int, default=8)
    e.add_argument("--laps", type=int, default=4)
    e.add_argument("--opponents", type=int, default=None, choices=range(MAX_OPPONENTS + 1), metavar="N",
                   help=f"BIAI cars on the grid, 0..{MAX_OPPONENTS} (default {MAX_OPPONENTS}, the paper's race; "
                        "0: a time trial from the back of the grid)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--max-time", type=float, default=None,
                   help="cut the races after this many seconds (unfinished then; default: the race's own limit)")
    e.add_argument("--device", default="cpu")
    e.add_argument("--threads", type=int, default=None)
    e.add_argument("--out", default="runs/eval")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    se = sub.add_parser("select", help="race every checkpoint of a run and pick one by the paper's rule (IV-D)")
    se.add_argument("run", help="a run directory of `gtvision train`")
    se.add_argument("--scenario", default="tokyo", choices=SCENARIO_NAMES)
    se.add_argument("--episodes", type=int, default=8, help="races per checkpoint (the same seeds for all)")
    se.add_argument("--max-collision", type=float, default=1.0,
                    help="mean car-collision time (s) a checkpoint must stay under (default 1.0)")
    # Paper: IV-D, the threshold is the worst car-collision time of the human champion's races
    se.add_argument("--human-table", default=None,
                    help="a table of human races (`gtvision play`): the threshold becomes their worst "
                         "car-collision time, as in paper IV-D")
    se.add_argument("--laps", type=int, default=4)
    se.add_argument("--seed", type=int, default=0)
    se.add_argument("--device", default="cpu")
    se.add_argument("--threads", type=int, default=None)
    se.add_argument("--out", default=None,
                    help="write each checkpoint's table here; tables already there from the same races are "
                         "reused (call it again while the run trains to race only the new checkpoints)")
    se.add_argument("--from-epoch", type=int, default=0,
                    help="only checkpoints from this epoch on (e.g. twice a contact boost's epochs, so that "
                         "the last half of training was on the paper's reward)")
    se.add_argument("--export", default=None, metavar="DIR",
                    help="copy the selected checkpoint here with its critics where it has them (`gtvision export "
                         "--with-critics`), e.g. as the teacher of `gtvision train --teacher DIR`; a DAgger round "
                         "of RUN/distill has its actor only")
    se.add_argument("--quiet", action="store_true")
    se.set_defaults(func=cmd_select)

    v = sub.add_parser("video", help="an MP4 or GIF of an evaluation race: the agent's ego view beside the map")
    who = v.add_mutually_exclusive_group()
    who.add_argument("--checkpoint", default=None, help="a run's checkpoint directory (or a run directory)")
    who.add_argument("--driver", default="biai", choices=["biai"])
    v.add_argument("--scenario", default="tokyo", choices=SCENARIO_NAMES)
    v.add_argument("--laps", type=int, default=4)
    v.add_argument("--max-time", type=float, default=None, help="cut the race after this many seconds")
    v.add_argument("--speedup", type=int, default=2, help="keep every n-th 10 Hz frame")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--threads", type=int, default=None)
    v.add_argument("--out", default="runs/race.mp4", help="the video file (.mp4 or .gif)")
    v.add_argument("--quiet", action="store_true")
    v.set_defaults(func=cmd_video)

    x = sub.add_parser("export", help="copy a checkpoint's actor and configuration into a small run directory "
                                      "(no optimisers, environments or replay) that evaluate and video accept")
    x.add_argument("--checkpoint", required=True, help="a run's checkpoint directory (or a run directory: its newest)")
    x.add_argument("--out", required=True, help="the new directory (e.g. papermill_runs/agents/tokyo_gt_sophy)")
    x.add_argument("--with-critics", action="store_true",
                   help="keep the critics, their targets and the entropy coefficient too (a teacher for "
                        "`gtvision train --teacher`, whose student adopts them); default: the actor only")
    x.add_argument("--set", action="append", default=[], metavar="agent.FIELD=VALUE",
                   help="race with a safety layer changed (the fields of AgentConfig.SAFETY_LAYERS: agent.gap_keeper, "
                        "agent.side_keeper, agent.recovery, agent.stability and their settings), e.g. --set "
                        "agent.stability=true; or how the networks compute (AgentConfig.COMPUTE_SETTINGS: "
                        "agent.image_dtype, agent.channels_last), e.g. --set agent.image_dtype=float32 on a CPU "
                        "without native bfloat16; not the networks themselves")
    x.add_argument("--ensemble", nargs="+", default=[], metavar="CHECKPOINT",
                   help="more checkpoints whose actors (same networks) drive with --checkpoint's as one: the mean of "
                        "their actions, each with its own memory (gtvision.agent.ensemble)")
    x.add_argument("--half", action="store_true",
                   help="store the networks' weights as float16 (half the bytes; they load into float32 networks, "
                        "so the races differ from the float32 export's in rounding: measure them again)")
    x.add_argument("--fit-seen-layers", type=int, default=0, metavar="RACES",
                   help="fit seen layers to the exported actor (gtvision.agent.seen_layers): it races RACES races with "
                        "the privileged gap and side keepers on, a head learns their bounds from its own features, "
                        "and the agent races through the head's bounds, reading only what its actor reads (24 races: "
                        "about 9 minutes on 2 cores for the committed agent; count them in the training time)")
    x.add_argument("--seen-layers-seed", type=int, default=None,
                   help="the seed of those races (default: gtvision.checkpoints.SEEN_LAYERS_SEED; keep it out of "
                        "the seeds you evaluate on)")
    x.add_argument("--compass-from", default=None, metavar="AGENT",
                   help="with --set agent.recovery_side=compass: take the reflex's compass of another exported agent "
                        "of the same scenario instead of training one")
    x.set_defaults(func=cmd_export)

    pl = sub.add_parser("play", help="drive an evaluation race yourself from the agent's view (pygame window)")
    pl.add_argument("--scenario", default="tokyo", choices=SCENARIO_NAMES)
    pl.add_argument("--name", default="player", help="recorded as driver human:<name>")
    pl.add_argument("--laps", type=int, default=4)
    pl.add_argument("--seed", type=int, default=0)
    pl.add_argument("--threads", type=int, default=None)
    pl.add_argument("--out", default="runs/human", help="directory of the table the race is appended to")
    pl.set_defaults(func=cmd_play)

    b = sub.add_parser("bench", help="benchmarks (reported as ratios to a reference in the same run)")
    b.add_argument("what", choices=["sim", "env", "learner", "update", "act", "training", "learning"],
                   help="sim: the simulator next to CarRacing-v3; env: make_vec next to the bare simulator; "
                        "learner: QR-SAC update time of the paper and cpu presets next to the matmul rate; "
                        "update: the vision agent's update under each speed choice (channels-last, bfloat16, "
                        "a delayed actor, a smaller actor batch) next to the preset's; "
                        "act: an exported vision agent's race step with its image encoders in float32, bfloat16, "
                        "channels-last (--checkpoint; --races, default 100); "
                        "training: the training loop's updates/s (collection included) next to the update alone; "
                        "learning: our learner next to Stable-Baselines3's SAC, same task and minutes, side by side")
    b.add_argument("--races", type=int, nargs="+", default=None,
                   help="parallel races (default: 64 256 1024 2048 for sim, 64 256 for env)")
    b.add_argument("--scenario", default="tokyo", choices=SCENARIO_NAMES)
    b.add_argument("--steps", type=int, default=None,
                   help="sim, env: timed steps (default 20); act: steps per block (default 5)")
    b.add_argument("--device", default="cpu")
    b.add_argument("--carracing-seconds", type=float, default=5.0)
    b.add_argument("--compile", action="store_true",
                   help="physics through torch.compile (warm-up about 30 s per number of races)")
    b.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: every core; 1 on a machine shared with other jobs)")
    b.add_argument("--processes", type=int, default=None,
                   help="sim: split the races over this many worker processes, the threads shared among them, "
                        "as rollout workers run them (default: one per core on CPU, 1 on CUDA)")
    b.add_argument("--opponents", nargs="+", default=["19"], metavar="N",
                   help="env, training: BIAI opponents per race, 0..19 or 'curriculum' (paper IV-B; 20-car races, "
                        "the cars not drawn parked), e.g. --opponents 0 4 19 curriculum (default 19)")
    b.add_argument("--no-image", action="store_true", help="env: render no image (render_image=False)")
    b.add_argument("--minutes", type=float, default=25.0, help="learning: minutes of training of each learner")
    b.add_argument("--window", type=float, default=5.0, help="learning: minutes per row of the table")
    b.add_argument("--preset", default="cpu", help="update, training, learning: our preset")
    b.add_argument("--variant", default=None,
                   help="update, training, learning: our variant (default: asymmetric for update, the GT Sophy "
                        "baseline for training and learning)")
    b.add_argument("--rounds", type=int, default=5, help="update: timed rounds (each a block of 4 updates a choice)")
    b.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="training, learning: change a field of our preset (repeatable)")
    b.add_argument("--epochs", type=int, default=5, help="training: timed epochs per opponent count")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--checkpoint", default=None, metavar="AGENT", help="act: the exported vision agent")
    b.add_argument("--no-sb3", action="store_true", help="learning: ours alone")
    b.add_argument("--out", default=None, help="learning: directory of both runs, the table and the plot")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileExistsError) as e:
        print(f"gtvision: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
