"""Run directories and their checkpoints: writing (atomic), listing, validating and loading.

Training writes them and evaluation reads them; neither imports the other, both import this module.

A run directory of ``gtvision train``::

    RUN/config.json                       {"run": the RunConfig, "env_id", "num_envs", "epochs",
                                           "preset": the resolved preset}
    RUN/metrics.jsonl                     one record per epoch
    RUN/checkpoints/epoch_NNNNNN/         one checkpoint:
        trainer.pt                        the trainer's state_dict (networks under "agent", optimisers,
                                          targets, counters, RNG states, environments, episodes)
        replay/                           the replay buffer, when the run saves it
        meta.json                         {"format", "epoch", "env_steps", "run": the run's identity, "replay"}
        COMPLETE                          written last: a checkpoint without it is ignored

A checkpoint is written to a temporary directory, renamed into place by ``os.replace`` and then marked
``COMPLETE``, so a process killed at any point leaves the previous checkpoints loadable. A directory that
is not a run or a checkpoint of this project is refused with :class:`NotARunError`, naming what is missing.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

CHECKPOINT_FORMAT = "gtvision-checkpoint-1"
"""Written in every checkpoint's ``meta.json``; anything else is refused as foreign."""
COMPLETE = "COMPLETE"
"""Marker file written last: a checkpoint directory without it is incomplete and ignored."""
CONFIG = "config.json"
"""A run directory's configuration file."""
TRAINER = "trainer.pt"
"""A checkpoint's trainer state."""
RUN_CONFIG_KEYS = ("run", "preset")
"""Entries every run's ``config.json`` holds (the RunConfig and the resolved preset)."""


class NotARunError(ValueError):
    """A directory is not a run, or not a checkpoint, of gtvision (the message says what is missing)."""


# ---------------------------------------------------------------------------- reading runs

def read_run_config(run_dir: str | os.PathLike) -> dict:
    """The ``config.json`` of run directory ``run_dir``; :class:`NotARunError` when it is missing, unreadable
    or not a run's (it lacks ``run`` or ``preset``)."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise NotARunError(f"{run_dir}: no run there ({CONFIG} is missing)")
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise NotARunError(f"{path} is not a gtvision run's configuration: unreadable ({e})") from e
    missing = [k for k in RUN_CONFIG_KEYS if not isinstance(config, dict) or k not in config]
    if missing:
        raise NotARunError(f"{path} is not a gtvision run's configuration: no {' or '.join(map(repr, missing))} "
                           "entry (a run's config.json holds the RunConfig under 'run' and the resolved preset "
                           "under 'preset')")
    return config


def run_preset(run_dir: str | os.PathLike):
    """The resolved preset a run trained with (its ``config.json``), even if the named preset changed since."""
    from .agent.presets import Preset
    return Preset.from_dict(read_run_config(run_dir)["preset"])


def complete_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """The run's complete checkpoint directories, oldest first."""
    root = Path(run_dir) / "checkpoints"
    return sorted(p for p in root.glob("epoch_*") if (p / COMPLETE).exists()) if root.exists() else []


def checkpoint_epoch(path: str | os.PathLike) -> int:
    """The epoch of a checkpoint directory ``.../epoch_NNNNNN``."""
    name = Path(path).name
    if not name.startswith("epoch_") or not name[len("epoch_"):].isdigit():
        raise ValueError(f"{path} is not a checkpoint directory name (expected epoch_NNNNNN)")
    return int(name[len("epoch_"):])


def resolve(path: str | os.PathLike) -> tuple[Path, Path]:
    """(checkpoint directory, run directory) of ``path``: a checkpoint (``RUN/checkpoints/epoch_N``) or a run
    directory (its newest complete checkpoint). :class:`NotARunError` names what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise NotARunError(f"{path} is not a checkpoint or a run directory: no such directory")
    if (path / CONFIG).exists() or (path / "checkpoints").exists():  # a run directory: its newest checkpoint
        read_run_config(path)
        found = complete_checkpoints(path)
        if not found:
            raise NotARunError(f"{path} holds no complete checkpoint (expected {path}/checkpoints/epoch_N/{COMPLETE})")
        path = found[-1]
    if not (path / TRAINER).is_file():
        raise NotARunError(f"{path} is not a checkpoint of a gtvision run: {TRAINER} is missing (expected "
                           f"RUN/checkpoints/epoch_N/{TRAINER} and RUN/{CONFIG})")
    run_dir = path.parent.parent
    read_run_config(run_dir)
    return path, run_dir


def load_state(path: str | os.PathLike, map_location: str | torch.device | None = None) -> dict:
    """The trainer state of checkpoint ``path``; ``ValueError`` when the file cannot be read."""
    try:
        return torch.load(Path(path) / TRAINER, weights_only=False, map_location=map_location)
    except Exception as e:  # noqa: BLE001  (a truncated or foreign file fails in many ways)
        raise ValueError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e}); it is corrupt") from e


def load_actor(path: str | os.PathLike, observation_space, action_space, device: str = "cpu"):
    """The actor of checkpoint ``path`` (or of a run's newest) as an acting-only ``QRSACAgent`` built from the
    run's saved resolved preset."""
    from .agent.qrsac import QRSACAgent

    path, run_dir = resolve(path)
    preset = run_preset(run_dir)

    def actor(state: dict):
        agent = QRSACAgent(observation_space, action_space, preset.agent, device, burn_in=preset.replay.burn_in,
                           acting_only=True)
        agent.actor.load_state_dict(state)
        return agent

    networks = load_state(path, map_location=device)["agent"]
    agent = actor(networks["actor"])
    if ENSEMBLE in networks:  # an ensemble (gtvision.agent.ensemble): the actor, then the others
        from .agent.ensemble import EnsembleActor
        agent.actor = EnsembleActor([agent.actor] + [actor(s).actor for s in networks[ENSEMBLE]]).to(agent.device)
    if COMPASS in networks:  # the recovery reflex's compass (gtvision.agent.compass)
        from .agent.compass import load_compass
        agent.compass = load_compass(networks[COMPASS]).to(agent.device)
    if SEEN_LAYERS in networks:  # seen layers fitted to the actor (gtvision.agent.seen_layers)
        from .agent.seen_layers import load_seen_layers
        agent.seen_layers = load_seen_layers(networks[SEEN_LAYERS]).to(agent.device)
    return agent


def latest_for_resume(run_dir: str | os.PathLike, identity: dict) -> Path:
    """The newest complete checkpoint of ``run_dir``, checked to be this project's and made by the run whose
    identity (the RunConfig fields that define what it trains) is ``identity``; ``ValueError`` otherwise."""
    run_dir = Path(run_dir)
    checkpoints = complete_checkpoints(run_dir)
    if not checkpoints:
        raise ValueError(f"--resume {run_dir}: no complete checkpoint in {run_dir / 'checkpoints'}")
    path = checkpoints[-1]
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"checkpoint {path}: meta.json unreadable ({e}); it is corrupt") from e
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("run") != identity:
        raise ValueError(f"checkpoint {path} is foreign: format {meta.get('format')!r} (expected "
                         f"{CHECKPOINT_FORMAT!r}) or made by another configuration")
    return path


# ---------------------------------------------------------------------------- writing

def save(trainer, run_dir: str | os.PathLike, identity: dict, keep: int, with_replay: bool = False) -> Path:
    """Write ``run_dir/checkpoints/epoch_NNNNNN`` for ``trainer`` (its ``state_dict``, its ``replay`` when
    ``with_replay``) atomically (:func:`_write_checkpoint`) and keep the newest ``keep`` complete checkpoints."""
    def write(tmp: Path):
        torch.save(trainer.state_dict(), tmp / TRAINER)
        if with_replay:
            trainer.replay.save(tmp / "replay")

    final = _write_checkpoint(run_dir, trainer.epoch, write, {"env_steps": trainer.env_steps, "run": identity,
                                                              "replay": with_replay})
    for old in complete_checkpoints(run_dir)[:-max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _write_checkpoint(run_dir: str | os.PathLike, epoch: int, write: Callable[[Path], None], meta: dict) -> Path:
    """``run_dir/checkpoints/epoch_NNNNNN``: ``write(tmp)`` fills a temporary directory, ``meta.json`` (``format``,
    ``epoch`` and ``meta``) joins it, ``os.replace`` renames it into place and the ``COMPLETE`` marker is written
    last. A process killed at any point leaves the previous checkpoints loadable; leftovers of killed writes go."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"epoch_{epoch:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    write(tmp)
    write_atomic(tmp / "meta.json", json.dumps({"format": CHECKPOINT_FORMAT, "epoch": epoch, **meta}, indent=2))
    fsync_dir(tmp)
    if final.exists():  # an incomplete leftover of a killed run at this epoch
        shutil.rmtree(final)
    os.replace(tmp, final)
    write_atomic(final / COMPLETE, "")
    fsync_dir(root)
    for leftover in root.glob(".tmp-*"):
        if leftover != tmp:
            shutil.rmtree(leftover, ignore_errors=True)
    return final


def restore(trainer, path: str | os.PathLike):
    """Restore ``trainer`` (and its replay, when the checkpoint holds one) from checkpoint ``path``."""
    path = Path(path)
    state = load_state(path)
    trainer.load_state_dict(state)
    if (path / "replay").exists():
        trainer.replay.load(path / "replay")
        if state.get("envs") is None:  # the environments start new episodes: cut the stored ones
            trainer.replay.restart_streams(range(trainer.replay.num_envs))


def write_atomic(path: str | os.PathLike, text: str):
    """Write ``text`` to ``path`` through a temporary file renamed into place (never half a file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def fsync_dir(path: str | os.PathLike):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


ENSEMBLE = "ensemble"
"""The part of an exported agent's state holding the actors an ensemble adds to its ``actor``
(``gtvision export --ensemble``; :mod:`gtvision.agent.ensemble`): a list of actor state dicts."""
COMPASS = "compass"
"""The part of an exported agent's state holding the recovery reflex's compass (``recovery_side='compass'``;
:mod:`gtvision.agent.compass`): its weights and frame size."""
SEEN_LAYERS = "seen_layers"
"""The part of an exported agent's state holding seen layers fitted to its actor (``gtvision export
--fit-seen-layers``; :mod:`gtvision.agent.seen_layers`): their weights and sizes."""
SEEN_LAYERS_SEED = 150_000
"""The default seed of the races seen layers are fitted on (``gtvision export --seen-layers-seed``): one no held-out
evaluation in LOG.md uses."""
TEACHER_PARTS = ("actor", "critics", "critic_targets", "log_alpha")
"""What :func:`export` keeps of an agent that is to teach another (``gtvision train --teacher``): its networks and
entropy coefficient, which a distilled student adopts with its actor, but no optimiser."""


def save_networks(run_dir: str | os.PathLike, epoch: int, networks: dict[str, dict], env_steps: int = 0,
                  meta: dict | None = None) -> Path:
    """Write ``run_dir/checkpoints/epoch_NNNNNN`` holding only ``networks`` (the agent's state by part, e.g.
    ``{"actor": actor.state_dict()}``), atomically as :func:`save` does: what :func:`export` writes and the
    students of DAgger rounds (``gtvision.training``) are. ``meta`` adds to its ``meta.json``."""
    def write(tmp: Path):
        torch.save({"agent": networks, "epoch": epoch, "env_steps": env_steps}, tmp / TRAINER)

    return _write_checkpoint(run_dir, epoch, write, {"env_steps": env_steps, "replay": False, **(meta or {})})


def _check_layers(layers: dict, run_dir: Path) -> dict:
    """``layers`` with the ``agent.`` prefix dropped, checked: only ``AgentConfig.SAFETY_LAYERS`` and
    ``AgentConfig.COMPUTE_SETTINGS``, values the
    agent's configuration accepts, and an agent that can hold them (``ValueError`` otherwise)."""
    import dataclasses

    from .agent.config import AgentConfig

    out = {k.removeprefix("agent."): v for k, v in layers.items()}
    allowed = AgentConfig.SAFETY_LAYERS + AgentConfig.COMPUTE_SETTINGS
    bad = sorted(set(out) - set(allowed))
    if bad:
        raise ValueError(f"export changes only the safety layers and how the networks compute "
                         f"(agent.{', agent.'.join(allowed)}), not {', '.join(bad)}: the networks were trained with "
                         f"the rest")
    agent = dataclasses.replace(run_preset(run_dir).agent, **out)   # the field checks
    if agent.actor_keys is not None:  # (None: the actor reads every key, so any layer's inputs)
        agent.check_layers(agent.actor_keys)
    return out


def _compass_info(config: dict) -> dict:
    """Where an exported agent's compass came from (its ``exported_from.compass``, searched through earlier exports)."""
    exported = config.get("exported_from") or {}
    while exported:
        if "compass" in exported:
            return dict(exported["compass"])
        exported = exported.get("earlier") or {}
    return {}


def _to_half(state):
    """``state`` (nested dicts and lists of tensors) with its floating-point tensors as float16."""
    if isinstance(state, dict):
        return {k: _to_half(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_to_half(v) for v in state]
    if torch.is_tensor(state) and state.is_floating_point():
        return state.to(torch.float16)
    return state


def export(path: str | os.PathLike, out: str | os.PathLike, parts: tuple[str, ...] = ("actor",),
           optional: tuple[str, ...] = (), layers: dict | None = None,
           ensemble: tuple[str | os.PathLike, ...] = (), half: bool = False, progress: bool = False,
           compass_from: str | os.PathLike | None = None, seen_layers_races: int = 0,
           seen_layers_seed: int = SEEN_LAYERS_SEED) -> Path:
    """A small copy of checkpoint ``path`` (or of a run's newest) in ``out``, as a run directory of its own that
    ``gtvision evaluate --checkpoint``, ``gtvision video`` and attribution accept: ``out/config.json`` (the run's
    configuration and resolved preset, and where it was exported from) and ``out/checkpoints/<epoch>/`` holding
    only the networks named in ``parts`` (of the agent's state: 'actor', 'critics', ...) -- no optimisers, no
    environments, no replay; the parts named in ``optional`` too where the checkpoint holds them (a DAgger round
    holds its actor only). ``layers``: safety-layer settings (``{"side_keeper": True, ...}``, fields of
    ``AgentConfig.SAFETY_LAYERS``) the exported agent races with instead of its run's, recorded as
    ``exported_from.layers``. ``ensemble``: more checkpoints whose actors (of the same architecture) drive with
    this one's as an ensemble (:mod:`gtvision.agent.ensemble`), kept as the part ``ENSEMBLE`` and recorded as
    ``exported_from.ensemble``; an ensemble exported again stays one. ``half``: store the networks' floating-point
    tensors as float16, half the bytes (recorded as ``exported_from.weights``); loading copies them into the
    float32 networks, so the agent computes as before on weights rounded to float16's 11 significant bits, and
    races that part from the float32 export's after a while, as other rounding does. An agent that races with
    ``recovery_side='compass'`` keeps its checkpoint's compass (the part ``COMPASS``), or gets one trained now for its
    scenario (:func:`gtvision.agent.compass.train_compass`, about a minute; ``progress``: its bar), recorded with its
    seconds and held-out accuracy as ``exported_from.compass``; or the compass of ``compass_from`` (another exported
    agent of the same scenario: one compass trained once). ``seen_layers_races`` > 0: seen layers fitted to the
    exported actor (:mod:`gtvision.agent.seen_layers`: it races that many races of ``seen_layers_seed`` with its
    privileged layers on, and a head learns their bounds from its features), kept as the part ``SEEN_LAYERS`` and
    recorded with their seconds and held-out scores as ``exported_from.seen_layers``; an export of an agent that has
    them keeps them (not with ``ensemble``, which changes the features they read). Refuses an ``out`` that already
    holds a run."""
    path, run_dir = resolve(path)
    layers = _check_layers(layers or {}, run_dir)
    out = Path(out)
    if (out / CONFIG).exists():
        raise FileExistsError(f"{out} already holds a run ({CONFIG}); choose another --out")
    state = load_state(path, map_location="cpu")
    missing = [p for p in parts if p not in state["agent"]]
    if missing:
        raise ValueError(f"checkpoint {path} has no {', '.join(missing)}; it has: {', '.join(state['agent'])}")
    parts = tuple(parts) + tuple(p for p in (*optional, ENSEMBLE, COMPASS, SEEN_LAYERS)
                                 if p in state["agent"] and p not in parts)
    if ensemble and (SEEN_LAYERS in state["agent"] or seen_layers_races):
        which = f"{path} has seen layers" if SEEN_LAYERS in state["agent"] else "--fit-seen-layers was asked"
        raise ValueError(f"--ensemble changes the features seen layers read: export the ensemble first, then fit "
                         f"seen layers to it ({which})")
    if seen_layers_races < 0:
        raise ValueError(f"seen_layers_races must be >= 0 (0: none fitted), got {seen_layers_races!r}")
    members = []
    shapes = {k: tuple(v.shape) for k, v in state["agent"]["actor"].items()}
    for other in ensemble:
        other_path, _ = resolve(other)
        actor = load_state(other_path, map_location="cpu")["agent"].get("actor")
        if actor is None or {k: tuple(v.shape) for k, v in actor.items()} != shapes:
            raise ValueError(f"--ensemble {other}: its actor is not of {path}'s architecture (an ensemble's actors "
                             "must have the same networks)")
        members.append((other_path, actor))
    config = read_run_config(run_dir)
    earlier = config.pop("exported_from", None)   # an export of an export keeps where the first came from
    config["exported_from"] = {"run": str(run_dir), "checkpoint": path.name, "parts": list(parts),
                               **({"earlier": earlier} if earlier else {})}
    if layers:
        config["preset"]["agent"].update(layers)
        config["exported_from"]["layers"] = layers
    networks = {p: state["agent"][p] for p in parts}
    if members:
        networks[ENSEMBLE] = [*networks.get(ENSEMBLE, []), *(actor for _, actor in members)]
        config["exported_from"]["ensemble"] = [str(p) for p, _ in members]
        config["exported_from"]["parts"] = list(networks)
    if compass_from is not None:
        donor_path, donor_run = resolve(compass_from)
        donor = load_state(donor_path, map_location="cpu")["agent"]
        donor_config = read_run_config(donor_run)
        if COMPASS not in donor:
            raise ValueError(f"--compass-from {compass_from}: it holds no compass; it has: {', '.join(donor)}")
        if donor_config.get("run", {}).get("scenario") != config.get("run", {}).get("scenario"):
            raise ValueError(f"--compass-from {compass_from}: its compass is of scenario "
                             f"{donor_config.get('run', {}).get('scenario')!r}, this agent's is "
                             f"{config.get('run', {}).get('scenario')!r}")
        networks[COMPASS] = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v
                             for k, v in donor[COMPASS].items()}
        config["exported_from"]["compass"] = {**_compass_info(donor_config), "from": str(compass_from)}
        config["exported_from"]["parts"] = list(networks)
    agent = {**config["preset"]["agent"]}
    if agent.get("recovery") and agent.get("recovery_side") == "compass" and COMPASS not in networks:
        from .agent.compass import compass_state, train_compass

        run = config.get("run", {})
        image_size = int((run.get("env_kwargs") or {}).get("image_size", 64))
        compass = train_compass(run.get("scenario") or "tokyo", image_size=image_size, progress=progress)
        networks[COMPASS] = compass_state(compass)
        config["exported_from"]["compass"] = compass.info
        config["exported_from"]["parts"] = list(networks)
    if half:
        networks = _to_half(networks)
        config["exported_from"]["weights"] = "float16"
    meta = json.loads((path / "meta.json").read_text()) if (path / "meta.json").exists() else {}
    final = save_networks(out, checkpoint_epoch(path), networks,
                          state.get("env_steps") or 0, {**meta, "replay": False, "exported": True})
    write_atomic(out / CONFIG, json.dumps(config, indent=2))
    if seen_layers_races:  # fitted to the agent as exported (its float16 weights, its layers), then added to it
        from .agent.seen_layers import fit_seen_layers, layer_steps, seen_layers_state

        start = time.perf_counter()
        scenario = config.get("run", {}).get("scenario") or "tokyo"
        steps = layer_steps(out, scenario, seen_layers_races, seen_layers_seed, progress=progress)
        race_seconds = round(time.perf_counter() - start, 1)
        head = fit_seen_layers(steps, progress=progress)
        networks[SEEN_LAYERS] = seen_layers_state(head)
        config["exported_from"]["seen_layers"] = {"races": seen_layers_races, "race_seed": seen_layers_seed,
                                                  "race_seconds": race_seconds, **head.info}
        config["exported_from"]["parts"] = list(networks)
        final = save_networks(out, checkpoint_epoch(path), networks,
                              state.get("env_steps") or 0, {**meta, "replay": False, "exported": True})
        write_atomic(out / CONFIG, json.dumps(config, indent=2))
    return final
