"""DAgger: a privileged teacher (the GT Sophy baseline) teaches the vision actor, before asymmetric RL.

Paper: IV-B trains the asymmetric agent by RL alone. Ours (``TrainConfig.distill_rounds`` with a run's
``teacher``, the ``cpu`` preset's deviation for the vision agent on 2 cores) first distils the privileged
agent's policy into the actor, the DAgger way (Ross, Gordon and Bagnell 2011):

=========  ==================================================================================================
round      what happens
=========  ==================================================================================================
0          the teacher drives (its mean action); the student learns the teacher's policy on those states
1 .. N-1   the student drives (its mean action, as it races); the teacher labels every state it visits; the
           student learns on every state it visited itself in rounds 1 .. k (round 0's teacher states are
           dropped: after the first round the student trains only on its own states)
=========  ==================================================================================================

A distillation that is given a ``state_dir`` leaves there, after every round but the last, what the next round
needs (the student, its optimiser, both replays of labelled states, the random generators and the seconds spent),
so that a killed run goes on from its last finished round (``gtvision train --resume``; one killed in its first
round begins the rounds again); the rounds run on as they
would have without the interruption (same seed, same result on CPU), except that with ``distill_continue`` the
resumed round's episodes begin afresh.

Each round starts new episodes, unless ``TrainConfig.distill_continue``: then the episodes run on from round to
round, the next round's driver taking the wheel where the last one left it, so the student visits whole races and
not only the first ``distill_steps / num_envs`` steps of each. With ``TrainConfig.distill_sample`` the student
drives its sampled action, not its mean: it strays from its own line as far as its Gaussian allows and the teacher
shows it the way back (noise injection, as DART: Laskey et al. 2017).

A label is the teacher's pre-tanh Gaussian at that state (mean, log std); the loss is KL(teacher || student)
(or KL(student || teacher), ``TrainConfig.distill_divergence="reverse"``) summed over the action's dimensions,
averaged over the trained rows of sequences whose recurrent state burns in from the stored one, as in the QR-SAC update (``QRSACAgent.update``), images shifted alike. The teacher
reads the privileged features (proprio, course points, opponents), the student its own keys (image,
proprio): both act on the same observations. Afterwards :func:`adopt_critics` gives the student the
teacher's critics and entropy coefficient (when the critics read the same inputs), so that RL starts with a
critic that knows the race.

With a clear-road teacher (``gtvision.training.RunConfig.clear_teacher``) two teachers share the labelling: the
run's ``teacher`` where the learner is in traffic (an opponent within ``TrainConfig.distill_clear_ahead_m`` ahead or
``distill_clear_behind_m`` behind: :func:`in_traffic`), the clear-road teacher everywhere else. Ours (``Paper:``
none): the shielded baseline races cleanly but laps 4 s slower than the pushing baseline it was fine-tuned from
(99.5 s against 95.1 to 95.6 s alone), and its students inherit the pace; the pushing baseline's students win but push.
"""
from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .augment import random_shift
from .config import AgentConfig, ReplayConfig, TrainConfig
from .qrsac import QRSACAgent, gaussian_kl
from .replay import SequenceReplay
from .rollout import Rollout
from .shield import layer_bounds

ROUND_END_KEYS = ("progress_m", "place", "wall_time_s", "car_contact_time_s", "off_course_time_s")
"""``info`` keys reported at the end of every round (its episodes rarely end within it)."""
DRIVERS = ("teacher", "student")
"""Who drives a round's episodes (:class:`TeacherStudent`)."""
RESCUE_ACTION_LIMIT = 0.9
"""A rescue label (``TrainConfig.distill_rescue``) is the BIAI's action clipped to this magnitude before its inverse
tanh: the BIAI's way out is bang-bang (full brake, full lock), whose pre-tanh means (3.8 at 0.999) would put the
student's divergence on those rows at ten times the rest (measured: 196 against 20 on a first round's states) and
let the rare rescues drive the whole fit. 0.9 still holds the brake past the 0.5 that engages reverse."""
DIVERGENCES = ("forward", "reverse")
"""What the student minimises (``TrainConfig.distill_divergence``): KL(teacher || student) or KL(student || teacher)."""


def _policy(agent: QRSACAgent, obs, hidden: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(mean, log std) of ``agent``'s pre-tanh Gaussian at one batched observation, its next hidden state and its
    actor's features."""
    features, hidden = agent.step_features(obs, hidden)
    mean, log_std = agent.actor.distribution(features)
    return mean, log_std, hidden, features


def in_traffic(obs, ahead_m: float, behind_m: float) -> torch.Tensor:
    """Whether each learner (n,) has an opponent on its grid (``obs["opponent_grid"]``: x, y, ... relative to the
    learner, in its frame; empty rows zero) at most ``ahead_m`` ahead or ``behind_m`` behind along its heading:
    where a clear-road teacher hands the labels to the run's teacher (:class:`TeacherStudent`)."""
    grid = torch.as_tensor(obs["opponent_grid"])
    present = grid.abs().sum(-1) > 0
    x = grid[..., 0]
    return (present & (x <= ahead_m) & (x >= -behind_m)).any(-1)


def has_layers(agent: QRSACAgent) -> bool:
    """Whether ``agent`` races with privileged safety layers (the gap keeper or the side keeper)."""
    return agent.config.gap_keeper or agent.config.side_keeper


def teacher_bounds(teacher: QRSACAgent, obs) -> torch.Tensor:
    """The bounds (n, 3) that ``teacher``'s safety layers set at a batched observation
    (:func:`gtvision.agent.shield.layer_bounds`): a seen shield's labels."""
    cfg, dev = teacher.config, teacher.device
    return layer_bounds(torch.as_tensor(obs["opponent_grid"], device=dev), torch.as_tensor(obs["proprio"], device=dev),
                        cfg.gap_keeper, cfg.side_keeper, cfg.gap_hold_m, cfg.gap_look_m)


class TeacherStudent:
    """A :class:`Rollout` driver: the teacher's and the student's policies on the same observations, ``driver``
    acting (its mean action; with ``generator``, a student driver draws its action from its Gaussian instead).
    :attr:`labels` holds the teacher's (mean, log std) (n, 2A) of the last step, its mean shielded by its safety
    layers (:func:`shielded_mean`); for a student with a seen shield (``AgentConfig.seen_shield``) the teacher's
    mean as its policy gives it, followed by its layers' bounds (n, 2A + 3), and a student driver's action passes
    through its own seen shield. With ``rescue`` (``TrainConfig.distill_rescue``: a callable giving the BIAI's actions
    (n, A) for the learners' cars and whether each is in trouble (n,), the racing vector env's ``biai_rescue``), the
    BIAI's action replaces the teacher's mean where the car is in trouble, in the labels and in round 0's driving.
    With ``clear_teacher`` (memoryless, as the privileged baselines) and ``clear_m`` (ahead, behind; m), the clear-road
    teacher's policy (through its own layers, if any) is the label and round 0's action wherever the learner is out
    of traffic (:func:`in_traffic`); :attr:`clear` holds that mask (n,) of the last step.
    The recurrent state is the student's followed by the teacher's. :attr:`config` is the
    student's: a student with a recovery reflex (``AgentConfig.recovery``) has it in DAgger's rollouts as in its races
    (:class:`gtvision.agent.rollout.Rollout` applies it), so its teacher labels the states the reflex leaves it in."""

    def __init__(self, teacher: QRSACAgent, student: QRSACAgent, driver: str,
                 generator: torch.Generator | None = None,
                 rescue: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None,
                 clear_teacher: QRSACAgent | None = None, clear_m: tuple[float, float] = (40.0, 5.0)):
        if driver not in DRIVERS:
            raise ValueError(f"unknown driver {driver!r}; valid: {', '.join(DRIVERS)}")
        if clear_teacher is not None:
            if clear_teacher.hidden_size:
                raise ValueError(f"a clear-road teacher must be memoryless (a privileged gt_sophy actor); this one "
                                 f"carries a recurrent state of {clear_teacher.hidden_size}")
            if student.config.seen_shield:
                raise ValueError("a student with a seen shield (agent.seen_shield=True) learns one teacher's layers; "
                                 "it takes no clear-road teacher")
            if clear_teacher.action_dim != student.action_dim:
                raise ValueError(f"the clear-road teacher acts in {clear_teacher.action_dim} dimensions, the student "
                                 f"in {student.action_dim}")
        if student.config.seen_shield and not has_layers(teacher):
            raise ValueError("a student with a seen shield (agent.seen_shield=True) learns its teacher's safety layers; "
                             "this teacher has none (agent.gap_keeper and agent.side_keeper are off)")
        if teacher.action_dim != student.action_dim:
            raise ValueError(f"the teacher acts in {teacher.action_dim} dimensions, the student in "
                             f"{student.action_dim}")
        self.teacher, self.student, self.driver, self.generator = teacher, student, driver, generator
        self.rescue = rescue
        self.clear_teacher, self.clear_m = clear_teacher, clear_m
        self.clear: np.ndarray | None = None
        self.config = student.config
        self.device = student.device
        self.labels: np.ndarray | None = None

    def initial_hidden(self, n: int) -> torch.Tensor:
        return torch.cat([self.student.initial_hidden(n), self.teacher.initial_hidden(n).to(self.device)], -1)

    @torch.no_grad()
    def act(self, obs, hidden: torch.Tensor, eval_mode: bool = True) -> tuple[np.ndarray, torch.Tensor]:
        hs = self.student.hidden_size
        t_mean, t_log_std, t_hidden, _ = _policy(self.teacher, obs, hidden[:, hs:].to(self.teacher.device))
        s_mean, s_log_std, s_hidden, s_features = _policy(self.student, obs, hidden[:, :hs])
        # the teacher's layers are part of its policy: it drives through them, and they are in its labels
        t_driven = shielded_mean(t_mean, obs, self.teacher) if has_layers(self.teacher) else t_mean
        if self.clear_teacher is not None:  # out of traffic, the clear-road teacher's policy is the label
            # (t_mean, the unshielded policy, feeds only a seen shield's labels, and a seen shield takes no clear road)
            c_driven, c_log_std = torch.as_tensor(policy_labels(self.clear_teacher, obs),
                                                  device=t_mean.device).chunk(2, -1)
            clear = ~in_traffic(obs, *self.clear_m).to(t_mean.device).unsqueeze(-1)
            t_driven, t_log_std = torch.where(clear, c_driven, t_driven), torch.where(clear, c_log_std, t_log_std)
            self.clear = clear.squeeze(-1).cpu().numpy()
        if self.rescue is not None:  # in trouble, the BIAI's way out is the label (and round 0's action)
            biai, trouble = self.rescue()
            biai_mean = torch.atanh(self.teacher._from_env_action(torch.as_tensor(biai, device=t_mean.device))
                                    .clamp(-RESCUE_ACTION_LIMIT, RESCUE_ACTION_LIMIT))
            trouble = torch.as_tensor(trouble, device=t_mean.device).unsqueeze(-1)
            t_mean, t_driven = torch.where(trouble, biai_mean, t_mean), torch.where(trouble, biai_mean, t_driven)
        if self.student.config.seen_shield:  # the policy and the layers' bounds, each for its own head
            self.labels = torch.cat([t_mean, t_log_std, teacher_bounds(self.teacher, obs)], -1).cpu().numpy()
        else:
            self.labels = torch.cat([t_driven, t_log_std], -1).cpu().numpy()
        mean = t_driven.to(self.device) if self.driver == "teacher" else s_mean
        if self.driver == "student" and self.generator is not None:
            noise = torch.randn(mean.shape, generator=self.generator).to(self.device)
            mean = mean + torch.exp(s_log_std) * noise
        action = self.student._to_env_action(torch.tanh(mean))
        if self.driver == "student":
            action = self.student.keep_seen(action, s_features)
        return action.cpu().numpy(), torch.cat([s_hidden, t_hidden.to(self.device)], -1)


@torch.no_grad()
def policy_labels(teacher: QRSACAgent, obs, shielded: bool = True) -> np.ndarray:
    """A memoryless ``teacher``'s labels (n, 2A) at a batched observation, as DAgger's (:class:`TeacherStudent`): its
    pre-tanh mean, through its safety layers (:func:`shielded_mean`) when ``shielded`` (for a student with a seen
    shield, which has layers of its own, its policy's mean as it is), then its log std; what kickstarting's RL
    stores with every row (``TrainConfig.kickstart_weight``)."""
    if teacher.hidden_size:
        raise ValueError(f"a kickstarting teacher must be memoryless (a privileged gt_sophy actor); this one carries a "
                         f"recurrent state of {teacher.hidden_size}")
    n = len(next(iter(obs.values())))
    mean, log_std, _, _ = _policy(teacher, obs, teacher.initial_hidden(n))
    if shielded and has_layers(teacher):
        mean = shielded_mean(mean, obs, teacher)
    return torch.cat([mean, log_std], -1).cpu().numpy()


def shielded_mean(mean: torch.Tensor, obs, agent: QRSACAgent) -> torch.Tensor:
    """A pre-tanh Gaussian mean (n, A) whose squashed action passes ``agent``'s safety layers
    (:meth:`QRSACAgent.keep_gap`): each component the layers move (the throttle capped by the gap keeper, the
    steering delta bounded by the side keeper) set to the layer's value."""
    squashed = agent._to_env_action(torch.tanh(mean))
    kept = agent.keep_gap(squashed, obs)
    moved = kept != squashed
    return torch.where(moved, torch.atanh(agent._from_env_action(kept).clamp(-0.999, 0.999)), mean)


def distill_loss(student: QRSACAgent, batch: dict, divergence: str = "forward", power: float = 1.0,
                 shield_weight: float = 10.0) -> torch.Tensor:
    """The mean KL(teacher || student) (``divergence="forward"``) or KL(student || teacher) (``"reverse"``) over
    the trained rows of a batch of :meth:`SequenceReplay.sample` with labels; images shifted as in the RL update
    (``AgentConfig.augment``). ``power`` p > 1: the power mean ``(mean KL^p)^(1/p)`` instead
    (``TrainConfig.distill_power``). A student with a seen shield adds ``shield_weight`` times the mean squared
    error of its bounds (:meth:`Actor.shield_bounds`) against the labels' (:func:`distill_terms`)."""
    kl, shield_mse = distill_terms(student, batch, divergence, power)
    return kl if shield_mse is None else kl + shield_weight * shield_mse


def distill_terms(student: QRSACAgent, batch: dict, divergence: str = "forward",
                  power: float = 1.0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`distill_loss`'s terms: the divergence, and a seen shield's mean squared error over the trained rows
    and the 3 bounds (None without a seen shield)."""
    cfg, bi = student.config, student.burn_in
    obs, mask = dict(batch["obs"]), batch["mask"]
    L = mask.shape[1]
    if cfg.augment:
        for k in student.actor.torso.image_keys:
            obs[k] = random_shift(obs[k], cfg.max_shift_px)
    h0 = batch["hidden"][:, :student.hidden_size]
    features, _ = student.actor.torso.unroll(obs, h0, batch["first"], burn_in=bi)
    mean, log_std = student.actor.distribution(features[:, :L])
    A = student.action_dim
    labels = batch["labels"][:, bi:bi + L]
    t_mean, t_log_std = labels[..., :A], labels[..., A:2 * A]
    shield_mse = None
    if cfg.seen_shield:
        err = ((student.actor.shield_bounds(features[:, :L]) - labels[..., 2 * A:2 * A + 3]) ** 2).mean(-1)
        shield_mse = (err * mask).sum() / mask.sum().clamp(min=1)
    if divergence == "forward":
        kl = gaussian_kl(t_mean, t_log_std, mean, log_std)
    elif divergence == "reverse":
        kl = gaussian_kl(mean, log_std, t_mean, t_log_std)
    else:
        raise ValueError(f"unknown divergence {divergence!r}; valid: {', '.join(map(repr, DIVERGENCES))}")
    if power == 1.0:
        return (kl * mask).sum() / mask.sum().clamp(min=1), shield_mse
    return ((kl.clamp(min=0.0) ** power * mask).sum() / mask.sum().clamp(min=1)) ** (1.0 / power), shield_mse


def _buffer(student: QRSACAgent, envs, replay: ReplayConfig, rows_per_env: int, seed: int) -> SequenceReplay:
    """A replay of the student's keys with the teacher's labels, ``rows_per_env`` rows a stream (plus room for
    the final observations of the episodes that end)."""
    n = envs.num_envs
    window = replay.burn_in + replay.seq_len + 1
    capacity = n * max(window, int(rows_per_env * 1.05) + 16)
    config = ReplayConfig(capacity=capacity, batch_sequences=replay.batch_sequences, seq_len=replay.seq_len,
                          burn_in=replay.burn_in, hidden_dtype=replay.hidden_dtype)
    return SequenceReplay(student.observation_space, student.actor.keys, student.action_dim, student.hidden_size,
                          n, config, gamma=1.0, n_step=1, device=student.device, seed=seed,
                          labels=2 * student.action_dim + (3 if student.config.seen_shield else 0))


ROUND_STATE = "round_{:06d}"
"""A finished round's resume state in a distillation's ``state_dir``: ``state.pt`` and the student's replay ``own/``
(the teacher's replay of round 0 is ``first/`` beside it, written once)."""


def resume_round(state_dir: str | os.PathLike | None) -> dict | None:
    """The last finished round a distillation left in ``state_dir`` (``{"round": r, "elapsed_s": seconds}``), or
    None when there is none (a new distillation)."""
    if state_dir is None or not Path(state_dir).is_dir():
        return None
    done = sorted(d for d in Path(state_dir).glob("round_*") if (d / "state.pt").exists())
    if not done:
        return None
    state = torch.load(done[-1] / "state.pt", map_location="cpu", weights_only=False)
    return {"round": int(state["round"]), "elapsed_s": float(state["elapsed_s"]), "path": done[-1]}


def _save_round(state_dir: Path, r: int, student: QRSACAgent, opt, first: SequenceReplay,
                own: SequenceReplay | None, sampler, elapsed_s: float):
    """Write round ``r``'s resume state atomically (a temporary directory renamed into place), then drop the older."""
    state_dir.mkdir(parents=True, exist_ok=True)
    if not (state_dir / "first").exists():
        tmp = state_dir / f".first.tmp-{os.getpid()}"
        first.save(tmp)
        os.replace(tmp, state_dir / "first")
    final = state_dir / ROUND_STATE.format(r)
    tmp = state_dir / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    if own is not None:
        own.save(tmp / "own")
    torch.save({"round": r, "elapsed_s": elapsed_s, "actor": student.actor.state_dict(), "optimizer": opt.state_dict(),
                "torch_rng": torch.get_rng_state(), "sampler": None if sampler is None else sampler.get_state()},
               tmp / "state.pt")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in state_dir.glob("round_*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)


def _load_round(path: Path, student: QRSACAgent, opt, first: SequenceReplay, own: SequenceReplay | None, sampler):
    state = torch.load(path / "state.pt", map_location=student.device, weights_only=False)
    student.actor.load_state_dict(state["actor"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"].cpu())
    if sampler is not None and state["sampler"] is not None:
        sampler.set_state(state["sampler"].cpu())
    first.load(path.parent / "first")
    if own is not None:
        own.load(path / "own")


def distill(student: QRSACAgent, teacher: QRSACAgent, envs, train: TrainConfig, replay: ReplayConfig,
            seed: int = 0, progress: bool = False, on_round: Callable[[dict], None] | None = None,
            clear_teacher: QRSACAgent | None = None, state_dir: str | os.PathLike | None = None) -> list[dict]:
    """``train.distill_rounds`` rounds of DAgger on ``envs`` (a racing vector env whose observations hold the
    teacher's and the student's keys), with ``clear_teacher`` labelling the states out of traffic
    (``train.distill_clear_ahead_m``, ``distill_clear_behind_m``; :class:`TeacherStudent`) if given; returns one
    record per round run now (also passed to ``on_round``). With ``state_dir`` each finished round but the last leaves
    its resume state there, and a distillation that finds one there goes on from the round after it (the module).

    ==========================  ==================================================================
    key                         meaning
    ==========================  ==================================================================
    ``distill/round``           0 .. distill_rounds - 1
    ``distill/driver``          'teacher' (round 0) or 'student'
    ``distill/states``          states the student trains on after this round
    ``distill/kl``              mean divergence of the round's last tenth of updates (NaN without updates)
    ``distill/shield_mse``      a seen shield's mean squared error over the same updates (with one only)
    ``distill/wall_s``          seconds since the distillation began
    ``distill/clear_share``     the share of the round's states the clear-road teacher labelled (with one only)
    ``distill/<key>``           the mean over the sub-environments of ``info[key]`` at the round's last step
                                (:data:`ROUND_END_KEYS`: how the round's driver fared in its episodes so far)
    ``charts/...``, ``episode/...``  the episodes of this round's driver that ended (``EpisodeStats``)
    ==========================  ==================================================================
    """
    from tqdm.auto import tqdm

    n = envs.num_envs
    steps_per_env = math.ceil(train.distill_steps / n)
    rounds = train.distill_rounds
    opt = torch.optim.Adam(student.actor.parameters(), lr=student.config.actor_lr)
    first = _buffer(student, envs, replay, steps_per_env, seed)
    own = _buffer(student, envs, replay, steps_per_env * max(1, rounds - 1), seed + 1) if rounds > 1 else None
    rollout = None
    sampler = torch.Generator().manual_seed(seed) if train.distill_sample else None
    start, elapsed = 0, 0.0
    resumed = resume_round(state_dir)
    if resumed is not None:
        _load_round(resumed["path"], student, opt, first, own, sampler)
        start, elapsed = resumed["round"] + 1, resumed["elapsed_s"]
    records, t0 = [], time.perf_counter() - elapsed
    per_round = steps_per_env + train.distill_updates
    bar = tqdm(total=rounds * per_round, initial=start * per_round, desc="DAgger", unit="it", disable=not progress)
    rescue = None
    if train.distill_rescue:
        rescue = getattr(envs.unwrapped, "biai_rescue", None)
        if rescue is None:
            raise ValueError("train.distill_rescue needs a racing environment (its BIAI labels the way out of trouble); "
                             f"{type(envs.unwrapped).__name__} has no biai_rescue()")
    for r in range(start, rounds):
        driver = TeacherStudent(teacher, student, "teacher" if r == 0 else "student", sampler, rescue,
                                clear_teacher, (train.distill_clear_ahead_m, train.distill_clear_behind_m))
        clear_counts = [0, 0]
        buffer = first if r == 0 else own
        if rollout is None or not train.distill_continue:
            buffer.restart_streams(np.arange(n))  # a round's episodes begin afresh
            rollout = Rollout(envs, driver, seed=seed + r)
        else:  # the episodes run on: the round's driver takes the wheel (its recurrent state rode along)
            rollout.agent = driver
            if r == 1:
                # the student's buffer takes the streams up mid-episode where the teacher's left them: an episode
                # that ended on round 0's last step makes round 1's first step an autoreset step, not a row
                own.prev_done[:] = first.prev_done
        for _ in range(steps_per_env):
            step = rollout.step()
            buffer.add(step.obs, step.hidden[:, :student.hidden_size], step.action, step.reward, step.terminated,
                       step.truncated, step.next_obs, labels=driver.labels)
            if driver.clear is not None:
                clear_counts[0] += int(driver.clear.sum())
                clear_counts[1] += len(driver.clear)
            bar.update(1)
        losses, shield_losses = [], []
        for _ in range(train.distill_updates):
            kl, shield_mse = distill_terms(student, buffer.sample(), train.distill_divergence, train.distill_power)
            loss = kl if shield_mse is None else kl + train.distill_shield_weight * shield_mse
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(kl.detach()))
            if shield_mse is not None:
                shield_losses.append(float(shield_mse.detach()))
            bar.update(1)
        tail = losses[-max(1, len(losses) // 10):]
        shield_tail = shield_losses[-max(1, len(shield_losses) // 10):]
        record = {"distill/round": r, "distill/driver": driver.driver, "distill/states": len(buffer),
                  "distill/kl": float(np.mean(tail)) if losses else math.nan, "distill/wall_s": time.perf_counter() - t0,
                  **({"distill/shield_mse": float(np.mean(shield_tail))} if shield_losses else {}),
                  **({"distill/clear_share": clear_counts[0] / clear_counts[1]} if clear_counts[1] else {}),
                  **{f"distill/{k}": float(np.mean(rollout.info[k])) for k in ROUND_END_KEYS if k in rollout.info},
                  **rollout.stats.summary()}
        records.append(record)
        bar.set_postfix(round=r, kl=f"{record['distill/kl']:.3f}")
        if on_round is not None:
            on_round(record)
        if state_dir is not None and r < rounds - 1:
            _save_round(Path(state_dir), r, student, opt, first, own, sampler, time.perf_counter() - t0)
    bar.close()
    return records


CRITIC_FIELDS = ("critic_keys", "critic_width", "critic_depth", "critic_trunk", "num_quantiles", "vector_transform",
                 "opponent_proximity", "symmetric_critic")
"""The ``AgentConfig`` fields that fix what a critic reads and its shape: a teacher's critics are adopted only
when all of them equal the student's."""


def adopt_critics(student: QRSACAgent, teacher_state: dict, teacher_config: AgentConfig) -> bool:
    """Load the teacher's critics (and their targets, and its entropy coefficient, which its critics' values
    include) into the student when they read the same inputs the same way (:data:`CRITIC_FIELDS`); returns
    whether they were adopted (not when the teacher was exported without its critics or its critics differ)."""
    critics = teacher_state.get("critics")
    if critics is None or any(getattr(teacher_config, f) != getattr(student.config, f) for f in CRITIC_FIELDS):
        return False
    student.critics.load_state_dict(critics)
    student.critic_targets.load_state_dict(teacher_state.get("critic_targets") or critics)
    if teacher_state.get("log_alpha") is not None:
        with torch.no_grad():
            student.log_alpha.copy_(teacher_state["log_alpha"])
    return True


__all__ = ["CRITIC_FIELDS", "DIVERGENCES", "DRIVERS", "RESCUE_ACTION_LIMIT", "TeacherStudent", "adopt_critics",
           "distill", "distill_loss", "distill_terms", "gaussian_kl", "has_layers", "in_traffic", "policy_labels",
           "teacher_bounds"]
