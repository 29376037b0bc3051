"""Configuration of the asymmetric QR-SAC agent, its sequence replay and its training loop.

Three dataclasses, resolved once and recorded with every run: :class:`AgentConfig` (networks and the
QR-SAC update), :class:`ReplayConfig` (the R2D2-style sequence replay) and :class:`TrainConfig` (epochs of
collection and updates). The numbers of the paper are in :mod:`gtvision.agent.presets` (``paper``), each
with its section; the defaults here are the paper's too. The ablations of paper V-C are configuration,
applied by :func:`with_variant`.

Each dataclass checks its fields when made (:func:`check_fields`): a value of the wrong type or out of its
range raises ``ValueError`` naming the field (``section.field``), what it must be, and the value, so that a
``--set train.epochs=-3`` or ``--set agent.actor_lr=abc`` is refused before anything runs.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing

RANGES = {
    ">0": (lambda v: v > 0, "> 0"), ">=0": (lambda v: v >= 0, ">= 0"), ">=1": (lambda v: v >= 1, ">= 1"),
    "[0,1]": (lambda v: 0 <= v <= 1, "in [0, 1]"), "(0,1]": (lambda v: 0 < v <= 1, "in (0, 1]"),
}
"""The ranges a field may be held to, by name: (test, how an error message says it)."""

_SECTIONS = {"AgentConfig": "agent", "ReplayConfig": "replay", "TrainConfig": "train"}


def _describe(hint) -> str:
    """'an int', 'a float or None', 'a tuple of int' ... for an error message."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if hint is type(None):
        return "None"
    if typing.get_origin(hint) is tuple:
        return f"a tuple of {_describe(args[0]).split(' ', 1)[-1]}"
    name = getattr(hint, "__name__", str(hint))
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _is(value, hint) -> bool:
    """``value`` is of type ``hint`` (ints count as floats; bools count only as bools)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is tuple:
        return isinstance(value, tuple) and all(_is(v, args[0]) for v in value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
    if hint is dict:
        return isinstance(value, dict)
    return isinstance(value, hint) if isinstance(hint, type) else True


def check_fields(config, ranges: dict[str, str] | None = None, choices: dict[str, tuple] | None = None,
                 section: str | None = None):
    """Raise ``ValueError`` unless every field of dataclass ``config`` has its annotated type, lies in its range
    (``ranges``: field -> a key of :data:`RANGES`; None passes) and is one of its ``choices``. The message names
    ``section.field`` (the ``--set`` key), what it must be, and the value given."""
    section = section or _SECTIONS.get(type(config).__name__, type(config).__name__)
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, hint = getattr(config, f.name), hints[f.name]
        if not _is(value, hint):
            raise ValueError(f"{section}.{f.name}={value!r}: expected {_describe(hint)}, got "
                             f"{type(value).__name__}")
        if value is None:
            continue
        if ranges and f.name in ranges:
            test, said = RANGES[ranges[f.name]]
            if not test(value):
                raise ValueError(f"{section}.{f.name}={value!r}: must be {said}")
        if choices and f.name in choices and value not in choices[f.name]:
            raise ValueError(f"{section}.{f.name}={value!r}: valid: {', '.join(map(str, choices[f.name]))}")


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """Networks and the QR-SAC update."""

    actor_keys: tuple[str, ...] | None = ("image", "proprio")
    """Observation keys the actor sees (paper III-D: local features only). None: every key."""
    critic_keys: tuple[str, ...] | None = ("proprio", "course_points", "opponent_grid")
    """Observation keys the critic sees (paper III-D: proprio + global). None: every vector key."""
    cnn_channels: tuple[int, ...] = (32, 64, 64)
    """Filters of the image encoder's convolutions (paper III-D)."""
    cnn_kernels: tuple[int, ...] = (8, 4, 3)
    """Kernel sizes of the convolutions (paper III-D)."""
    cnn_strides: tuple[int, ...] = (4, 2, 1)
    """Strides of the convolutions (paper III-D)."""
    image_embed: int = 512
    """Width of the linear embedding of the flattened feature map (paper III-D)."""
    recurrent: bool = True
    """Actor has a GRU after the encoders (paper III-D; False is the 'no RNN' ablation of V-C)."""
    hidden_size: int = 512
    """GRU hidden size (paper V-C: 512; the ablation uses 128)."""
    actor_width: int = 2048
    """Units of each hidden layer of the actor's MLP (paper III-D)."""
    actor_depth: int = 4
    """Hidden layers of the actor's MLP (paper III-D)."""
    critic_width: int = 2048
    """Units of each hidden layer of the critic's MLP (paper III-D)."""
    critic_depth: int = 4
    """Hidden layers of the critic's MLP (paper III-D)."""
    critic_trunk: int = 64
    """N > 0: the state features first go through Linear(N) -> LayerNorm -> tanh, then join the action in the
    critic's MLP (as DrQ-v2's critic); 0: the MLP reads the state features and the action together.
    Paper: III-D concatenates them at the input. Ours, in every preset: the action is 2 of the critic's 635
    inputs there, and a critic trained on real Tokyo states explains the reversal penalty's dependence on the
    action with R^2 0.77 without the trunk, 0.87 with it (the learning issue's measurements)."""
    symmetric_critic: bool = False
    """Critic sees the actor's keys, with its own encoder and recurrence (paper V-C ablation)."""
    num_quantiles: int = 32
    """Quantiles per critic (paper III-D)."""
    kappa: float = 1.0
    """Huber threshold of the quantile loss (as Sony's public QR-SAC; the paper does not say)."""
    gamma: float = 0.9896
    """Discount per control step (paper IV-B)."""
    n_step: int = 7
    """Steps of the multi-step return (paper IV-B)."""
    alpha: float = 0.01
    """Entropy coefficient (paper IV-B: fixed at 0.01); the initial one when ``target_entropy`` is set."""
    target_entropy: float | None = None
    """None: alpha stays fixed (the paper). A number: alpha is tuned so that the policy's entropy stays at
    it (Haarnoja et al. 2018, "SAC: algorithms and applications"), e.g. -2 for two action dimensions."""
    actor_lr: float = 2.5e-5
    """Adam learning rate of the actor (paper IV-B)."""
    critic_lr: float = 2.5e-5
    """Adam learning rate of the critics (paper IV-B)."""
    tau: float = 0.005
    """Polyak coefficient of the target critics (as SAC; the paper does not say)."""
    actor_q: str = "min"
    """How the actor loss combines the twin critics' means: 'min' or 'mean'."""
    actor_update_every: int = 1
    """The actor and the entropy coefficient take a step every N-th update, the critics every update (TD3's
    delayed policy updates, Fujimoto et al. 2018). Paper: IV-B does not say; 1 is SAC's rule, both every update.
    In the updates between, the actor's features (for the critics' targets) are computed without gradients:
    the vision actor's CNN and GRU backward is most of an update on a CPU (``gtvision bench update``)."""
    actor_sequences: int | None = None
    """None: the actor's loss trains on every sequence of a batch (the paper). N: on the first N only, a smaller
    image batch for the actor's step; the critics train on all, and the other sequences' actor features (for
    the critics' targets) are computed without gradients. Ours, for a CPU (``gtvision bench update``)."""
    channels_last: bool = False
    """True: the image encoders' convolutions run in channels-last memory format (weights and input), the
    layout the observation is stored in. Paper: III-D does not say (a speed choice, ``gtvision bench update``)."""
    image_dtype: str = "float32"
    """'bfloat16': the image encoders run under ``torch.autocast`` at bfloat16 (their convolutions and the
    embedding's matmul; the rest of the update in float32). Paper: does not say (a speed choice: it pays only on
    CPUs with native bfloat16; an exported agent may race with it changed, ``COMPUTE_SETTINGS``)."""
    init_log_std: float | None = None
    """None: the actor's last layer is initialised like the others (pre-tanh std about 1). A number: its
    weights are scaled by 0.01 and its bias set so that a fresh policy's pre-tanh Gaussian has mean 0 and
    log std ``init_log_std``, whatever it sees. Paper: IV-B does not say how the networks start."""
    log_std_min: float = -5.0
    """Lower clamp of the Gaussian's log standard deviation (our choice, as in SAC implementations)."""
    log_std_max: float = 2.0
    """Upper clamp of the Gaussian's log standard deviation."""
    augment: bool = True
    """Random shift of image observations during updates (paper III-E)."""
    max_shift_px: int = 4
    """Largest shift in pixels, with reflect padding (paper IV-B)."""
    zero_hidden_init: bool = False
    """Burn-in starts from zeros instead of the stored hidden state (paper V-C ablation)."""
    opponent_proximity: bool = False
    """True: each row of ``opponent_grid`` that a network reads adds one feature, the car's nearness in units
    of a car: symlog(4 (max(|x| / 4.2, |y| / 2.0) - 1)) from its relative position (x, y) (m), 0 where the
    bodies touch (a 4.2 x 2.0 m car, about the three cars of Table I), 0.34 at a tenth of a car's length
    behind, 1.6 two lengths away; an empty row reads -1.6. Symlog of the position alone moves by 0.06
    between touching a car ahead (x = 4.2 m) and following it 0.4 m further back. Paper: III-A gives the
    positions only; ours (off by default): the reading of r^c's threshold, made visible."""
    gap_keeper: bool = False
    """True: the actor's action passes through a gap keeper (:func:`gtvision.agent.shield.gap_keep`) that caps the
    throttle when closing on a car ahead in lane, in training and in racing; only for an actor that reads
    ``opponent_grid`` and ``proprio`` (the gt_sophy variant's: the layer reads privileged features). Paper: none, a
    safety layer of ours (off by default, see the module)."""
    gap_hold_m: float = 0.4
    """The gap keeper's gap (m, bumper to bumper) it holds when it acts (:data:`gtvision.agent.shield.GAP_HOLD_M`);
    with ``seen_shield_weight``, the gap of the seen shield's labels in RL."""
    gap_look_m: float = 3.0
    """The gap keeper watches the cars in lane whose gap (m) is below this (:data:`gtvision.agent.shield.GAP_LOOK_M`);
    with ``seen_shield_weight``, so do the seen shield's labels in RL."""
    side_keeper: bool = False
    """True: the actor's steering delta passes through a side keeper (:func:`gtvision.agent.shield.side_keep`) that
    steers away from a car alongside when the lateral gap closes too fast, in training and in racing; only for an
    actor that reads ``opponent_grid`` (privileged). Paper: none, a safety layer of ours (off by default)."""
    seen_shield: bool = False
    """True: the actor has a second head on its own features (image and proprio through its GRU), which predicts the
    bounds a privileged teacher's safety layers set (:func:`gtvision.agent.shield.layer_bounds`: the gap keeper's
    throttle ceiling, the side keeper's steering bounds), learnt in DAgger from a teacher with layers, and its
    action passes through them (:func:`gtvision.agent.shield.keep_bounds`) in training and in racing. The actor's
    mean then learns the teacher's policy without its layers. Paper: none (ours, off by default): the vision
    actor cannot read the privileged layers' inputs, so it learns to see what they see."""
    seen_shield_weight: float = 0.0
    """With a seen shield, in RL (:meth:`gtvision.agent.qrsac.QRSACAgent.update`): the weight of its loss beside the
    actor's, the mean squared error of its bounds against those the gap keeper (at ``gap_hold_m``, ``gap_look_m``)
    and the side keeper set (:func:`gtvision.agent.shield.layer_bounds`) on the replay's ``opponent_grid`` and
    ``proprio``, which the asymmetric critic reads. 0: the head learns in DAgger only, and drifts as RL moves the
    features under it (LOG.md, RS1). Paper: none (ours): privileged labels for an auxiliary head, as the critic's
    privileged inputs, in training only; the actor still acts on its image and proprio alone."""
    seen_shield_training: str = "seen"
    """With a seen shield, what bounds the action of RL's training steps (``act`` with ``eval_mode=False``):
    'seen' (its own head's, as in racing) or 'privileged' (the layers' own bounds on the observation's
    ``opponent_grid`` and ``proprio``, those the head learns under ``seen_shield_weight``). Racing and evaluation
    (``eval_mode=True``) always go through the head. Paper: none (ours): 'privileged' is a teacher's shield in
    training only, as the critic's privileged inputs; under 'seen' the policy learns to push where the head is
    blind (LOG.md, RS2)."""
    recovery: bool = False
    """True: a recovery reflex (:mod:`gtvision.agent.recovery`) overrides the actor's action when the car has stood
    still for ``recovery_trigger_s``: it backs off and turns the nose to the side the car's steering points to (a
    three-point turn), in training and in racing. It reads only ``proprio`` (the forward speed and the steering
    command), so the vision actor may have it. Paper: none, a safety layer of ours (off by default): the vision
    students' unfinished races end standing against a barrier or a car (LOG.md). A DAgger student with it has it in
    DAgger's rollouts too (LOG.md, run VS5: it finished fewer races than without)."""
    recovery_trigger_s: float = 1.5
    """The reflex begins when the forward speed has stayed below ``recovery_stop_mps`` this long (s)."""
    recovery_stop_mps: float = 1.0
    """Below this forward speed (m/s; reversing counts) the reflex counts the car as stopped. Above it a car crawling
    along a barrier the wrong way never triggers it (LOG.md, "An ensemble of students": 3 m/s measured, no help)."""
    recovery_reverse_s: float = 3.0
    """It holds the brake this long (s; reverse engages after 1 s at a standstill), steering away."""
    recovery_exit_s: float = 1.5
    """Then it steers to the other lock this long (s), with at least ``recovery_exit_throttle``."""
    recovery_exit_throttle: float = 0.3
    """The least throttle while it drives out (0..1)."""
    recovery_side: str = "steer"
    """Which way the reflex turns the nose: 'steer' (the side the steering command points to, left when straight)
    or 'yaw' (back against the car's rotation over the ``gtvision.agent.recovery.YAW_WINDOW_S`` before it begins,
    from the yaw rate: the way out of a spin; the steering's side when the car did not turn) or 'compass' (the side
    that turns the nose back towards the course by a compass on the frame, :mod:`gtvision.agent.compass`: a small
    CNN of its own, stored with an exported agent; ``gtvision export --set agent.recovery_side=compass`` trains
    one)."""
    recovery_swing: bool = False
    """True: after backing off, the reflex releases the pedals (the car rolls on backwards) until the steering command
    has swung to the exit side's lock (``gtvision.agent.recovery.SWING_LOCK``, at most
    ``gtvision.agent.recovery.SWING_MAX_S``), and only then drives out for ``recovery_exit_s``. False (as the
    agents raced until the thirtieth session): it drives out at once, its front wheels still turned the backing way
    for the ~0.7 s the steering takes to pass the centre, which turns the nose back the way it came. Measured: no
    help (LOG.md, "A car stopped at a wall")."""
    recovery_forget: bool = False
    """True: the actor's memory (its GRU state) starts afresh when the reflex hands the wheel back, as on the wall
    bench, where the students drive away from most walls. False: the memory runs on through the reflex (as the
    agents raced until the thirtieth session). Measured: no change (LOG.md, "A car stopped at a wall": from a fresh
    memory the policy still steers into the wall it stands at)."""
    recovery_turn: bool = False
    """With ``recovery_side='compass'``: True chains the reflex's cycles (back off, drive out) while the compass reads
    the car as facing backwards, up to ``gtvision.agent.recovery.TURN_CYCLES`` in a row: a turn round in several
    points, for a car that stopped facing the wrong way, where the policy would drive on the wrong way. False: one
    cycle, then the policy."""
    recovery_wrong_way_s: float = 0.0
    """With ``recovery_side='compass'``: > 0 starts the reflex also when the compass has read the car as facing
    backwards for this long (s) in a row below ``gtvision.agent.recovery.WRONG_WAY_MPS``, stopped or not: a car that
    drives off the wrong way after a spin (on the wall bench every agent of ours does) is stopped and, with
    ``recovery_turn``, turned round. 0: off."""
    recovery_crawl: bool = False
    """With ``recovery_side='compass'``: True turns a car round that the compass reads as facing backwards below
    ``gtvision.agent.recovery.CRAWL_MPS``: full lock towards the course at a crawl until the compass reads it along the
    course, backed off by a reflex cycle where it stops at a barrier (the BIAI's turn round, on the frame instead of
    the course). False: off. Paper: none, a safety layer of ours."""
    stability: bool = False
    """True: a stability aid (:mod:`gtvision.agent.stability`) holds the pedal at ``stability_throttle`` or more
    while the rear axle slides past ``stability_slip_deg`` (no lifting, no braking: the front-driven Tokyo car spins
    when it lifts with its tail out), in training and in racing, after the recovery reflex. It reads only ``proprio``
    (the forward and lateral speed, the yaw rate) and the car's geometry, so the vision actor may have it. Paper:
    none, a safety layer of ours (off by default): the two-teacher vision students spin about once a race (LOG.md,
    "A stability aid")."""
    stability_slip_deg: float = 3.0
    """The rear axle's slip angle (degrees) past which the aid acts (the tyres' peak is near 7 degrees). 3 and
    ``stability_throttle`` 0.5 were chosen among six settings on E3's races of the selection seed (4,000), none on the
    held-out seeds (LOG.md, "A stability aid")."""
    stability_throttle: float = 0.5
    """The least pedal (0..1 of throttle) while it acts."""
    stability_min_mps: float = 8.0
    """It acts above this forward speed (m/s) only: slip angles mean little at a crawl."""
    vector_transform: str = "scaled"
    """Applied to every vector observation before the networks: 'scaled' (a feature with finite bounds in the
    observation space mapped to [-1, 1] by them, the others symlog), 'symlog' (sign(x) log(1 + |x|), as
    DreamerV3) or 'none'. Paper: III-D does not say how the features are scaled; ours: the racing features
    span hundredths of a radian (steering) to hundreds of metres (course points); raw, the course points
    make the critic diverge, and symlog alone leaves the steering history (std 0.008 to 0.04 on BIAI
    driving) invisible next to them, and with it the steering penalties' dependence on the action."""

    def __post_init__(self):
        check_fields(self, {
            "image_embed": ">=1", "hidden_size": ">=1", "actor_width": ">=1", "actor_depth": ">=0",
            "critic_width": ">=1", "critic_depth": ">=0", "critic_trunk": ">=0", "num_quantiles": ">=1",
            "kappa": ">0", "gamma": "(0,1]", "n_step": ">=1", "alpha": ">=0", "actor_lr": ">0", "critic_lr": ">0",
            "tau": "(0,1]", "max_shift_px": ">=0", "seen_shield_weight": ">=0", "gap_hold_m": ">=0",
            "gap_look_m": ">0", "recovery_trigger_s": ">=0", "recovery_stop_mps": ">=0", "recovery_reverse_s": ">=0",
            "recovery_exit_s": ">=0", "recovery_exit_throttle": "[0,1]", "recovery_wrong_way_s": ">=0",
            "stability_slip_deg": ">=0",
            "stability_throttle": "[0,1]", "stability_min_mps": ">=0", "actor_update_every": ">=1",
            "actor_sequences": ">=1"},
            {"vector_transform": ("scaled", "symlog", "none"), "actor_q": ("min", "mean"),
             "seen_shield_training": ("seen", "privileged"), "image_dtype": ("float32", "bfloat16"),
             "recovery_side": ("steer", "yaw", "compass")})
        if self.recovery_wrong_way_s > 0 and self.recovery_side != "compass":
            raise ValueError(f"agent.recovery_wrong_way_s={self.recovery_wrong_way_s} reads the compass: it needs "
                             f"agent.recovery_side='compass', got {self.recovery_side!r}")
        if self.recovery_crawl and self.recovery_side != "compass":
            raise ValueError(f"agent.recovery_crawl=True reads the compass: it needs agent.recovery_side='compass', "
                             f"got {self.recovery_side!r}")
        if self.recovery_turn and self.recovery_side != "compass":
            raise ValueError(f"agent.recovery_turn=True reads the compass: it needs agent.recovery_side='compass', "
                             f"got {self.recovery_side!r}")
        if self.log_std_min >= self.log_std_max:
            raise ValueError(f"agent.log_std_min={self.log_std_min} must be below agent.log_std_max="
                             f"{self.log_std_max}")
        if not (len(self.cnn_channels) == len(self.cnn_kernels) == len(self.cnn_strides)):
            raise ValueError(f"cnn_channels {self.cnn_channels}, cnn_kernels {self.cnn_kernels} and "
                             f"cnn_strides {self.cnn_strides} must have the same length")

    SAFETY_LAYERS = ("gap_keeper", "gap_hold_m", "gap_look_m", "side_keeper", "recovery", "recovery_trigger_s",
                     "recovery_stop_mps", "recovery_reverse_s", "recovery_exit_s", "recovery_exit_throttle",
                     "recovery_side", "recovery_swing", "recovery_forget", "recovery_turn", "recovery_wrong_way_s",
                     "recovery_crawl",
                     "stability", "stability_slip_deg", "stability_throttle", "stability_min_mps")
    """The fields that set the safety layers (:mod:`gtvision.agent.shield`) around the actor's action and nothing
    the networks compute: an exported agent may race with them changed (``gtvision export --set``)."""
    COMPUTE_SETTINGS = ("image_dtype", "channels_last")
    """The fields that set how the networks compute, not what they are (the same weights): an exported agent may race
    with them changed too (``gtvision export --set agent.image_dtype=float32``). On a CPU without native bfloat16
    (AVX2 only) a race step of the committed agent costs 2.6 times as much under bfloat16 autocast as in float32
    (README, "Racing in float32")."""
    LAYER_READS = {"gap_keeper": ("opponent_grid", "proprio"), "side_keeper": ("opponent_grid",),
                   "recovery": ("proprio",), "stability": ("proprio",)}
    """What each safety layer reads, which the actor must read too (privileged features: not the vision actor)."""

    def check_layers(self, actor_reads) -> None:
        """``ValueError`` when a safety layer is on whose inputs are not all in ``actor_reads``."""
        for flag, needs in self.LAYER_READS.items():
            if getattr(self, flag) and not set(needs) <= set(actor_reads):
                raise ValueError(f"agent.{flag}=True needs an actor that reads {sorted(needs)} (a privileged one, as "
                                 f"the gt_sophy variant's); this one reads {sorted(actor_reads)}")
        if self.recovery and self.recovery_side == "compass" and "image" not in set(actor_reads):
            raise ValueError(f"agent.recovery_side='compass' reads the image, which this actor does not "
                             f"(it reads {sorted(actor_reads)}): give it 'steer' or 'yaw'")

    def reads(self, key: str) -> bool:
        """Whether the actor or a critic reads observation ``key`` (keys None: the actor reads every key, the
        asymmetric critic every vector key; the symmetric critic reads the actor's)."""
        return (self.actor_keys is None or key in self.actor_keys
                or (self.critic_keys is not None and key in self.critic_keys))


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
    """The sequence replay and its batches."""

    capacity: int = 5_000_000
    """Stored transitions (paper IV-B: 5 million)."""
    batch_sequences: int = 16
    """Sequences per batch (paper IV-B: 16 x 32 = mini-batch of 512)."""
    seq_len: int = 32
    """Trained steps per sequence (paper IV-B)."""
    burn_in: int = 16
    """Steps run without gradients before the trained ones (paper IV-B)."""
    path: str | None = None
    """Directory for np.memmap storage; None keeps the buffer in RAM."""
    hidden_dtype: str = "float16"
    """Storage dtype of the actor hidden state. Paper: IV-B does not say; float16 halves its 2 KB per row."""

    def __post_init__(self):
        check_fields(self, {"capacity": ">=1", "batch_sequences": ">=1", "seq_len": ">=1", "burn_in": ">=0"},
                     {"hidden_dtype": ("float16", "float32")})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The training loop: epochs of collected steps and updates (``gtvision.agent.loop``)."""

    epochs: int = 20_000
    """Training epochs (paper IV-B)."""
    env_steps_per_epoch: int = 500
    """Environment steps (all sub-environments together) per epoch (ours; the paper gives none)."""
    updates_per_epoch: int = 50
    """Gradient updates per epoch (ours; the paper gives none)."""
    num_envs: int = 20
    """Parallel sub-environments (paper IV-B: 20 rollout workers)."""
    reset_epoch: int | None = 2000
    """Epoch at which networks and optimisers are reinitialised (paper IV-B: 2000); None: never."""
    learning_starts: int = 1000
    """Transitions in the buffer before the first update (ours)."""
    penalty_ramp_epochs: int = 0
    """0: the learner trains on the environment's reward (the paper). N > 0 (ours, racing environments
    only): the weights of the six penalty terms of paper III-C grow linearly from ``penalty_start`` times
    theirs to theirs over the first N epochs. The replay keeps each step's eight terms and a batch's
    rewards are recomputed with the weights of the moment, so the critics always learn one reward; the
    returns reported are the environment's. Paper: IV-B trains with the full penalties from the start;
    with a laptop's data a fresh policy learns from them only to stop (see ``gtvision.agent.presets``)."""
    penalty_start: float = 0.1
    """Scale of the penalty weights at epoch 0 of a ramp (see ``penalty_ramp_epochs``)."""
    contact_boost: float = 1.0
    """Scale of the two car-contact weights (r^v, r^c of paper III-C) at epoch 0; it falls linearly to 1 (the
    paper's weights) over the first ``contact_boost_epochs`` epochs. Ours, racing environments only, like the
    penalty ramp (stored terms relabelled with the weights of the moment). Paper: IV-B trains with the
    paper's weights throughout; a boost teaches following before passing, and a run stopped at or after
    twice ``contact_boost_epochs`` has trained its last half on the paper's reward."""
    contact_boost_epochs: int = 0
    """Epochs over which ``contact_boost`` falls to 1 (0: no boost)."""
    demo_steps: int = 0
    """0: no demonstrations (the paper). N > 0 (ours, racing environments only): before training, the BIAI
    drives N steps in the learner's seat of the training environments, stored in a replay of their own that
    collection never overwrites, and every batch draws ``demo_share`` of its sequences from it (RLPD's
    symmetric sampling, Ball et al. 2023). Paper: IV-B learns from its own experience only."""
    demo_share: float = 0.5
    """Share of each batch's sequences drawn from the demonstrations (with ``demo_steps`` > 0)."""
    distill_rounds: int = 0
    """DAgger rounds before RL in a run with a ``teacher`` (``gtvision.training.RunConfig``); unused without one
    (the actor learns by RL alone, as in the paper). Ours, racing environments (``gtvision.agent.distill``): the
    privileged teacher drives the first round, the student every later one, every state labelled with the
    teacher's policy; the student's actor learns to match it, then the teacher's critics (same inputs) start
    the RL. Paper: IV-B trains the vision agent by RL from scratch, which on 2 cores is slow for an actor on
    images (LOG.md, "The vision agent")."""
    distill_steps: int = 8000
    """Environment steps (all sub-environments together) collected in each DAgger round."""
    distill_updates: int = 1000
    """Student updates after each DAgger round (batches of ``replay.batch_sequences`` sequences)."""
    distill_divergence: str = "forward"
    """What the student minimises (``gtvision.agent.distill.DIVERGENCES``): ``"forward"``, KL(teacher || student),
    which lets a student that cannot place its mean widen its Gaussian and so weighs its mean's error by its own
    precision; ``"reverse"``, KL(student || teacher), which weighs the mean's error by the teacher's precision
    and keeps the student's spread within the teacher's."""
    distill_power: float = 1.0
    """The student minimises the power mean ``(mean_states KL^p)^(1/p)`` of its divergence from the teacher: 1, the
    mean (DAgger's loss); p > 1 weighs the states it imitates worst more, each by ``KL^(p-1)`` (ours: the
    unfinished races of the distilled agent begin at rare states where its action is far from the teacher's, a
    deadlock it does not steer out of, a braking point in traffic it misses; LOG.md, "The vision agent")."""
    distill_shield_weight: float = 10.0
    """With a seen shield (``AgentConfig.seen_shield``), the weight of its loss (the mean squared error of its bounds
    against the teacher's layers', :data:`gtvision.agent.shield.BOUNDS`, each in [-1, 1]) beside the KL."""
    distill_continue: bool = False
    """False: every DAgger round starts new episodes (a round of ``distill_steps`` over ``num_envs`` sub-environments
    sees only their first ``distill_steps / num_envs`` steps: 100 s of each race in the ``cpu`` preset). True: the
    episodes run on from round to round (the student takes the wheel where the last round left it), so the rounds
    together cover whole episodes (to the environment's ``max_time_s``) and not only their starts."""
    distill_sample: bool = False
    """False: the student drives DAgger's rounds with its mean action (as it races). True: with an action drawn from
    its Gaussian, so that it visits the states around its own line and learns the teacher's way back from them
    (noise injection, DART: Laskey et al. 2017)."""
    distill_rescue: bool = False
    """False: the teacher labels every state DAgger visits. True: where the car is in trouble (stopped long enough for
    the BIAI to back out, backing out, or facing the wrong way at a crawl: :func:`gtvision.sim.biai.biai_rescuing`),
    the BIAI's action is the label instead (clipped: ``gtvision.agent.distill.RESCUE_ACTION_LIMIT``), and round 0's
    teacher drives it: the BIAI's manoeuvre (reverse off the barrier, turn round) where a teacher trained by RL never
    learnt one. Paper:
    none (ours): a student's unfinished races end standing at a barrier or facing the wrong way after a spin, where
    the shielded teacher's labels pivot the car on its nose (LOG.md, "The shielded teacher's student"); run it with
    episodes that go on after a stop (``--env-arg stuck_s=10``), or the teacher never labels such states."""
    distill_clear_ahead_m: float = 40.0
    """With a clear-road teacher (``gtvision.training.RunConfig.clear_teacher``): a state is in traffic, and the
    run's ``teacher`` labels it, when an opponent is at most this far ahead of the learner (m, along its heading, on
    the opponent grid); elsewhere the clear-road teacher labels it (:func:`gtvision.agent.distill.in_traffic`)."""
    distill_clear_behind_m: float = 5.0
    """The same behind the learner (m): a car alongside or just behind is traffic too."""
    kickstart_weight: float = 0.0
    """0: RL alone after any DAgger. w > 0, in a run with a ``teacher`` (kickstarting, Schmitt et al. 2018): the
    teacher labels every state RL collects with its policy (its mean through its safety layers, as DAgger's labels),
    and the actor's loss adds w times KL(teacher || student) on the trained rows, so that RL improves the distilled
    actor on the states it visits without drifting from its teacher. Paper: none (ours, the ``cpu`` preset's
    vision agent on 2 cores; LOG.md, "Kickstarting")."""

    def __post_init__(self):
        check_fields(self, {"epochs": ">=1", "env_steps_per_epoch": ">=1", "updates_per_epoch": ">=0",
                            "num_envs": ">=1", "reset_epoch": ">=1", "learning_starts": ">=0",
                            "penalty_ramp_epochs": ">=0", "penalty_start": "[0,1]", "demo_steps": ">=0",
                            "contact_boost": ">=1", "contact_boost_epochs": ">=0",
                            "demo_share": "[0,1]", "distill_rounds": ">=0", "distill_steps": ">=1",
                            "distill_updates": ">=0", "distill_power": ">=1",
                            "distill_shield_weight": ">=0", "kickstart_weight": ">=0",
                            "distill_clear_ahead_m": ">=0", "distill_clear_behind_m": ">=0"})
        from .distill import DIVERGENCES
        if self.distill_divergence not in DIVERGENCES:
            raise ValueError(f"unknown distill_divergence {self.distill_divergence!r}; valid: "
                             f"{', '.join(map(repr, DIVERGENCES))}")

    def penalty_scale(self, epoch: int) -> float:
        """The scale of the penalty weights at ``epoch`` (1 without a ramp)."""
        if self.penalty_ramp_epochs <= 0:
            return 1.0
        return self.penalty_start + (1.0 - self.penalty_start) * min(1.0, epoch / self.penalty_ramp_epochs)

    def contact_scale(self, epoch: int) -> float:
        """The scale of the car-contact weights at ``epoch`` (1 without a boost; see ``contact_boost``)."""
        if self.contact_boost_epochs <= 0:
            return 1.0
        return self.contact_boost + (1.0 - self.contact_boost) * min(1.0, epoch / self.contact_boost_epochs)

    @property
    def reweighs(self) -> bool:
        """Whether the learner's reward weights differ from the environment's in some epoch (a penalty ramp
        or a contact boost), so that the replay keeps each step's eight terms."""
        return self.penalty_ramp_epochs > 0 or (self.contact_boost_epochs > 0 and self.contact_boost != 1.0)


VARIANTS = ("asymmetric", "symmetric_critic", "zero_hidden", "hidden_128", "no_rnn", "no_aug", "no_reset",
            "gt_sophy")
"""The main agent and the ablations of paper V-C, plus the GT Sophy baseline of paper IV-C."""


def with_variant(agent: AgentConfig, train: TrainConfig, variant: str) -> tuple[AgentConfig, TrainConfig]:
    """Return (agent, train) configs changed for ``variant`` (one of :data:`VARIANTS`)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    rep = dataclasses.replace
    if variant == "symmetric_critic":
        agent = rep(agent, symmetric_critic=True)
    elif variant == "zero_hidden":
        agent = rep(agent, zero_hidden_init=True)
    elif variant == "hidden_128":
        agent = rep(agent, hidden_size=128)
    elif variant == "no_rnn":
        agent = rep(agent, recurrent=False)
    elif variant == "no_aug":
        agent = rep(agent, augment=False)
    elif variant == "no_reset":
        train = rep(train, reset_epoch=None)
    elif variant == "gt_sophy":
        # Paper IV-C: GT Sophy (Wurman et al.) drives from proprio and global features, no image, no RNN.
        agent = rep(agent, actor_keys=("proprio", "course_points", "opponent_grid"), recurrent=False)
    return agent, train
