"""R2D2-style sequence replay (paper IV-B).

One ring buffer per sub-environment ("stream"), so a sequence is a run of consecutive rows of one stream.
A row is one observation, stored once (images as uint8), with what happened after it:

=============  ====================  =====================================================================
field          shape / dtype         meaning
=============  ====================  =====================================================================
obs[key]       (*shape) space dtype  o_t
hidden         (H,) float16          actor hidden state *entering* step t (h_{t-1}); the burn-in start
action         (A,) float32          a_t, in the environment's action units
reward         () float32            r_{t+1}
reward_terms   (K,) float32          with ``reward_terms=K``: the K unweighted terms of r_{t+1}, so that a
                                     batch's rewards can be recomputed with other weights (``sample``)
labels         (M,) float32          with ``labels=M``: M numbers per row that a learner is taught (a teacher's
                                     policy at o_t, ``gtvision.agent.distill``)
terminated     () bool               the episode terminated after a_t
truncated      () bool               the episode was truncated after a_t
first          () bool               o_t is an episode's first observation (recurrent state reset)
last           () bool               o_t is an episode's final observation: no action, never trained on
=============  ====================  =====================================================================

Feeding it from a ``gymnasium`` vector env with ``AutoresetMode.NEXT_STEP`` (see ``gtvision.env.racing``):
call :meth:`SequenceReplay.add` with every step's (obs, hidden, action, reward, terminated, truncated,
next_obs). When a sub-environment's step ended an episode, its final observation ``next_obs`` is stored as
a ``last`` row; the buffer remembers it, and the next step of that sub-environment, the autoreset
pseudo-transition (action ignored, reward 0), is *not* stored.

A batch is ``batch_sequences`` windows of ``burn_in + seq_len + n_step`` rows: the burn-in, the trained
steps, and the rows their n-step targets bootstrap from. Windows may cross episode boundaries (``first``
resets the recurrent state; ``mask`` drops ``last`` rows from the losses).
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from gymnasium import spaces

from ..rewards import combine
from .config import ReplayConfig
from .rollout import episode_ends


def available_memory_bytes() -> int:
    """RAM available to a new allocation: MemAvailable of /proc/meminfo, else free physical pages."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def n_step_targets(reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, start: int, length: int,
                   n: int, gamma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n-step returns of the steps ``start .. start + length - 1`` of windows of rows.

    ========================  ===========  ==============================================================
    argument / result         shape        meaning
    ========================  ===========  ==============================================================
    reward, terminated, ...   (B, W)       per row; W >= start + length + n
    returns                   (B, length)  R_t = sum_{k < m} gamma^k r_{t+k+1}, m = min(n, steps to the
                                           episode's end)
    discount                  (B, length)  gamma^m, or 0 when the episode *terminated* within the m steps
                                           (a truncation bootstraps from its final observation)
    bootstrap_index           (B, length)  window row t + m whose state the target critic evaluates
    ========================  ===========  ==============================================================
    """
    b = reward.shape[0]
    t = np.arange(start, start + length)
    ret = np.zeros((b, length), np.float32)
    m = np.zeros((b, length), np.int64)
    alive = np.ones((b, length), bool)
    term = np.zeros((b, length), bool)
    for k in range(n):  # n is small (7): a loop over the horizon, vectorised over samples
        idx = t + k
        ret += alive * np.float32(gamma ** k) * reward[:, idx]
        m += alive
        term |= alive & terminated[:, idx]
        alive &= ~(terminated[:, idx] | truncated[:, idx])
    discount = np.where(term, 0.0, np.power(gamma, m)).astype(np.float32)
    return ret, discount, t[None, :] + m


class SequenceReplay:
    """Sequence replay of capacity ``config.capacity`` rows, split evenly over ``num_envs`` streams.

    Frames are stored once, as uint8. Large capacities live in ``np.memmap`` files under ``config.path``;
    the constructor computes the memory need (:attr:`bytes_per_transition` x capacity) and refuses, with a
    ``MemoryError`` naming the numbers, one that the RAM (or the disk, with ``path``) cannot hold.
    """

    def __init__(self, observation_space: spaces.Dict, keys: Sequence[str], action_dim: int, hidden_size: int,
                 num_envs: int, config: ReplayConfig, gamma: float, n_step: int, device: str | torch.device = "cpu",
                 seed: int | None = None, reward_terms: int = 0, labels: int = 0):
        self.config, self.gamma, self.n_step = config, gamma, n_step
        self.keys, self.num_envs, self.device = tuple(keys), num_envs, torch.device(device)
        self.window = config.burn_in + config.seq_len + n_step
        self.stream_capacity = config.capacity // num_envs
        if self.stream_capacity < self.window:
            raise ValueError(f"capacity {config.capacity} over {num_envs} envs gives {self.stream_capacity} rows "
                             f"per stream, fewer than one window of burn_in + seq_len + n_step = {self.window}")
        self.capacity = self.stream_capacity * num_envs
        self.rng = np.random.default_rng(seed)
        fields = {f"obs/{k}": (observation_space[k].shape, observation_space[k].dtype) for k in self.keys}
        fields.update({
            "hidden": ((hidden_size,), np.dtype(config.hidden_dtype)),
            "action": ((action_dim,), np.float32),
            "reward": ((), np.float32),
            "terminated": ((), np.bool_), "truncated": ((), np.bool_),
            "first": ((), np.bool_), "last": ((), np.bool_),
        })
        if reward_terms:
            fields["reward_terms"] = ((reward_terms,), np.float32)
        if labels:
            fields["labels"] = ((labels,), np.float32)
        self.bytes_per_transition = sum(int(np.prod(s)) * np.dtype(d).itemsize for s, d in fields.values())
        """Bytes of one stored row: the uint8 frame plus the small vectors."""
        need = self.bytes_per_transition * self.capacity
        if config.path is None:
            avail = available_memory_bytes()
            if need > avail:
                raise MemoryError(
                    f"replay capacity {config.capacity:,} x {self.bytes_per_transition:,} B/transition needs "
                    f"{need / 2**30:.1f} GiB but {avail / 2**30:.1f} GiB of RAM is available; lower the "
                    f"capacity or pass ReplayConfig(path=...) to memory-map it on disk")
        else:
            os.makedirs(config.path, exist_ok=True)
            free = shutil.disk_usage(config.path).free
            if need > free:
                raise MemoryError(
                    f"replay capacity {config.capacity:,} x {self.bytes_per_transition:,} B/transition needs "
                    f"{need / 2**30:.1f} GiB but {config.path!r} has {free / 2**30:.1f} GiB free")
        self.storage: dict[str, np.ndarray] = {}
        for name, (shape, dtype) in fields.items():
            full = (self.capacity, *shape)
            if config.path is None:
                self.storage[name] = np.zeros(full, dtype)
            else:
                fname = os.path.join(config.path, name.replace("/", "_") + ".npy")
                self.storage[name] = np.lib.format.open_memmap(fname, mode="w+", dtype=dtype, shape=full)
        self.head = np.zeros(num_envs, np.int64)       # next row to write, per stream
        self.size = np.zeros(num_envs, np.int64)       # rows held, per stream
        self.prev_done = np.zeros(num_envs, bool)     # last add ended an episode: next add is autoreset
        self.next_first = np.ones(num_envs, bool)     # next stored row starts an episode

    def __len__(self) -> int:
        return int(self.size.sum())

    @property
    def full(self) -> bool:
        """Every row holds a transition (paper IV-B: the networks are reinitialised at this point)."""
        return len(self) >= self.capacity

    def _write(self, envs: np.ndarray, values: Mapping[str, np.ndarray]):
        rows = envs * self.stream_capacity + self.head[envs]
        for name, value in values.items():
            self.storage[name][rows] = value
        self.head[envs] = (self.head[envs] + 1) % self.stream_capacity
        self.size[envs] = np.minimum(self.size[envs] + 1, self.stream_capacity)

    def add(self, obs: Mapping[str, np.ndarray] | np.ndarray, hidden: torch.Tensor | np.ndarray, action: np.ndarray,
            reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
            next_obs: Mapping[str, np.ndarray] | np.ndarray,
            streams: Sequence[int] | np.ndarray | None = None, terms: np.ndarray | None = None,
            labels: np.ndarray | None = None):
        """Store one vector-env step; every argument has a leading axis of ``num_envs`` (or of ``streams``).

        ``hidden`` (num_envs, H) is the actor state passed *into* ``act`` for ``obs``. Sub-environments whose
        previous step ended an episode are on their autoreset step and are skipped. ``streams``: the streams
        the rows belong to, when a rollout worker's environments fill part of the buffer (default: all).
        ``terms`` (num_envs, K): the reward's unweighted terms, required when the buffer stores them;
        ``labels`` (num_envs, M) likewise.
        """
        if not isinstance(obs, Mapping):
            obs, next_obs = {"obs": obs}, {"obs": next_obs}
        if isinstance(hidden, torch.Tensor):
            hidden = hidden.detach().cpu().numpy()
        idx = np.arange(self.num_envs) if streams is None else np.asarray(streams, np.int64)
        terminated, truncated = np.asarray(terminated, bool), np.asarray(truncated, bool)
        keep = ~self.prev_done[idx]
        local = np.flatnonzero(keep)
        extra = {}
        if "reward_terms" in self.storage:
            if terms is None:
                raise ValueError("this replay stores the reward's terms: pass terms=(num_envs, K) to add()")
            extra["reward_terms"] = np.asarray(terms, np.float32)[local]
        if "labels" in self.storage:
            if labels is None:
                raise ValueError("this replay stores labels: pass labels=(num_envs, M) to add()")
            extra["labels"] = np.asarray(labels, np.float32)[local]
        self._write(idx[local], {
            **{f"obs/{k}": np.asarray(obs[k])[local] for k in self.keys},
            "hidden": np.asarray(hidden)[local], "action": np.asarray(action)[local],
            "reward": np.asarray(reward, np.float32)[local], "terminated": terminated[local],
            "truncated": truncated[local], "first": self.next_first[idx[local]], "last": np.zeros(len(local), bool),
            **extra,
        })
        done = episode_ends(self.prev_done[idx], terminated, truncated)
        ended = np.flatnonzero(done)
        if len(ended):  # the episode's final observation, returned with terminated / truncated
            z = np.zeros(len(ended), bool)
            self._write(idx[ended], {
                **{f"obs/{k}": np.asarray(next_obs[k])[ended] for k in self.keys},
                "hidden": np.zeros((len(ended), self.storage["hidden"].shape[1])),
                "action": np.zeros((len(ended), self.storage["action"].shape[1])), "reward": np.zeros(len(ended)),
                "terminated": z, "truncated": z, "first": z, "last": ~z,
                **{name: np.zeros((len(ended), self.storage[name].shape[1]))
                   for name in ("reward_terms", "labels") if name in self.storage},
            })
        self.next_first[idx[keep]] = False
        self.next_first[idx[~keep]] = True  # the autoreset step returned the next episode's first observation
        self.prev_done[idx] = done

    def restart_streams(self, streams: Sequence[int] | np.ndarray):
        """Cut the episodes in progress in ``streams`` (their environments were lost, e.g. a rollout worker
        died): the newest row becomes the episode's final observation (``last``, masked), the row before it
        a truncation that bootstraps from it, and the next row stored starts a new episode."""
        for st in np.asarray(streams, np.int64):
            self.prev_done[st], self.next_first[st] = False, True
            if self.size[st] == 0:
                continue
            newest = st * self.stream_capacity + (self.head[st] - 1) % self.stream_capacity
            if self.storage["last"][newest]:
                continue  # the episode had ended already
            self.storage["last"][newest] = True
            if self.size[st] > 1 and not self.storage["first"][newest]:
                before = st * self.stream_capacity + (self.head[st] - 2) % self.stream_capacity
                if not self.storage["terminated"][before]:
                    self.storage["truncated"][before] = True

    def sample(self, batch_sequences: int | None = None, reward_weights: np.ndarray | None = None) -> dict:
        """A batch of windows as torch tensors on ``device``. With ``reward_weights`` (K,), the rewards (and
        so the n-step returns) are the stored terms weighted by them, not the rewards stored.

        =================  ==================  =====================================================
        key                shape               notes
        =================  ==================  =====================================================
        obs[key]           (B, W, *shape)      W = burn_in + seq_len + n_step, stored dtype
        action             (B, W, A) float32
        reward, terminated, truncated, first, last  (B, W)
        hidden             (B, H) float32      stored actor state entering the window's first row
        nstep_return       (B, L) float32      L = seq_len; trained rows burn_in .. burn_in + L - 1
        nstep_discount     (B, L) float32
        bootstrap_index    (B, L) int64        window row of the bootstrap state
        mask               (B, L) float32      0 on ``last`` rows (no action taken there)
        labels             (B, W, M) float32   with ``labels=M`` only
        =================  ==================  =====================================================
        """
        b = batch_sequences or self.config.batch_sequences
        starts = np.maximum(self.size - self.window + 1, 0)
        total = int(starts.sum())
        if total == 0:
            raise ValueError(f"no stream holds a full window of {self.window} rows yet (held: {self.size.tolist()})")
        u = self.rng.integers(0, total, b)
        cum = np.cumsum(starts)
        stream = np.searchsorted(cum, u, side="right")
        offset = u - (cum[stream] - starts[stream])
        oldest = (self.head - self.size) % self.stream_capacity
        rows = (oldest[stream, None] + offset[:, None] + np.arange(self.window)) % self.stream_capacity
        rows = rows + stream[:, None] * self.stream_capacity  # (B, W)
        s = self.storage
        data = {name: s[name][rows] for name in ("action", "reward", "terminated", "truncated", "first", "last")}
        if reward_weights is not None:
            if "reward_terms" not in s:
                raise ValueError("reward_weights needs a replay that stores the reward's terms "
                                 "(reward_terms=K)")
            data["reward"] = combine(s["reward_terms"][rows], reward_weights)
        ret, disc, boot = n_step_targets(data["reward"], data["terminated"], data["truncated"], self.config.burn_in,
                                         self.config.seq_len, self.n_step, self.gamma)
        bi, L = self.config.burn_in, self.config.seq_len
        to = lambda x: torch.from_numpy(np.ascontiguousarray(x)).to(self.device, non_blocking=True)
        if "labels" in s:
            data["labels"] = s["labels"][rows]
        batch = {k: to(v) for k, v in data.items()}
        batch["obs"] = {k: to(s[f"obs/{k}"][rows]) for k in self.keys}
        batch["hidden"] = to(s["hidden"][rows[:, 0]].astype(np.float32))
        batch["nstep_return"], batch["nstep_discount"], batch["bootstrap_index"] = to(ret), to(disc), to(boot)
        batch["mask"] = to((~data["last"][:, bi:bi + L]).astype(np.float32))
        return batch

    # --- checkpoints ----------------------------------------------------------------------------------------
    _COUNTERS = ("head", "size", "prev_done", "next_first")

    def save(self, directory: str | os.PathLike):
        """Write the buffer into ``directory`` (one ``.npy`` per field, the counters and the sampler's RNG)."""
        os.makedirs(directory, exist_ok=True)
        for name, array in self.storage.items():
            np.save(os.path.join(directory, name.replace("/", "_") + ".npy"), array)
        np.savez(os.path.join(directory, "counters.npz"), **{k: getattr(self, k) for k in self._COUNTERS})
        with open(os.path.join(directory, "rng.json"), "w") as f:
            import json
            json.dump(self.rng.bit_generator.state, f)

    def load(self, directory: str | os.PathLike):
        """Read a buffer written by :meth:`save` into this one (same fields and capacity, else ``ValueError``)."""
        import json
        for name, array in self.storage.items():
            saved = np.load(os.path.join(directory, name.replace("/", "_") + ".npy"), mmap_mode="r")
            if saved.shape != array.shape or saved.dtype != array.dtype:
                raise ValueError(f"replay field {name!r} in {directory} is {saved.dtype}{saved.shape}, this buffer's "
                                 f"is {array.dtype}{array.shape}: a different configuration")
            array[...] = saved
        counters = np.load(os.path.join(directory, "counters.npz"))
        for k in self._COUNTERS:
            getattr(self, k)[...] = counters[k]
        with open(os.path.join(directory, "rng.json")) as f:
            self.rng.bit_generator.state = json.load(f)


def concat_batches(*batches: dict) -> dict:
    """One batch of the sequences of several (:meth:`SequenceReplay.sample`), in order, along the batch axis."""
    out = {k: torch.cat([b[k] for b in batches]) for k in batches[0] if k != "obs"}
    out["obs"] = {k: torch.cat([b["obs"][k] for b in batches]) for k in batches[0]["obs"]}
    return out
