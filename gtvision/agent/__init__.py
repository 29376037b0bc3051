"""Asymmetric recurrent QR-SAC (paper III-D, III-E, IV-B).

==================  ================================================================
module              contents
==================  ================================================================
``config``          AgentConfig, ReplayConfig, TrainConfig (each validates its fields); the V-C variants
``presets``         ``paper``, ``cpu``, ``smoke``; ``resolve``, a run's configuration resolved once
``networks``        image encoder, recurrent torso, actor, quantile critic
``qrsac``           quantile Huber loss, QR-SAC target, the agent (act / update)
``replay``          sequence replay with stored hidden states and n-step targets
``augment``         random shift with mirrored padding
``rollout``         one rollout step: act, step, autoreset, hidden reset, episode statistics
``loop``            the training epoch of both backends; the single-process backend
``distributed``     the Ray backend: rollout workers as Ray actors
==================  ================================================================
"""
from .augment import random_shift
from .config import VARIANTS, AgentConfig, ReplayConfig, TrainConfig, with_variant
from .loop import train_local
from .presets import PRESET_NAMES, Preset, get_preset
from .qrsac import QRSACAgent, qrsac_target, quantile_huber_loss
from .replay import SequenceReplay, n_step_targets

__all__ = ["PRESET_NAMES", "VARIANTS", "AgentConfig", "Preset", "QRSACAgent", "ReplayConfig", "SequenceReplay",
           "TrainConfig", "get_preset", "n_step_targets", "qrsac_target", "quantile_huber_loss", "random_shift",
           "train_local", "with_variant"]
