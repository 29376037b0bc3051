"""The reflex seen from outside, for the diagnostics that watch it in races (reflex_sides.py, compass_side.py,
reflex_frames.py): their races, a stand-in for a Rollout's reflex that calls a function of theirs each step, and the
race loop to the end."""
import numpy as np

from gtvision.agent.rollout import Rollout
from gtvision.evaluation import race_envs


def reflex_races(checkpoint, n: int, seed: int):
    """`gtvision evaluate`'s ``n`` Tokyo races of ``seed`` for ``checkpoint``, which must race with the reflex:
    (rollout, the races' batch, the reflex)."""
    envs, agent = race_envs(checkpoint, "tokyo", n, 4, "cpu")
    rollout = Rollout(envs, agent, seed=seed, eval_mode=True)
    reflex = rollout.reflex
    assert reflex is not None, "the checkpoint races without the recovery reflex (export --set agent.recovery=true)"
    return rollout, envs.unwrapped.batch, reflex


def wrap_reflex(rollout, call) -> None:
    """``rollout.reflex`` replaced by an object whose ``__call__`` is ``call(action, proprio, image=None)`` (which
    calls the original reflex itself) and whose other attributes are the original's."""
    reflex = rollout.reflex
    rollout.reflex = type("Wrapped", (), {"__call__": staticmethod(call), "reset": reflex.reset,
                                          "state_dict": reflex.state_dict, "forget": reflex.forget,
                                          "handing_back": reflex.handing_back})()


def race_to_end(rollout, live: np.ndarray, on_step=None, report=None, max_steps: int = 6000) -> np.ndarray:
    """Step ``rollout`` until no race in ``live`` (updated in place) runs; returns which finished. ``on_step(t,
    step, done)`` after each step; ``report()`` a line every 500 steps."""
    finished = np.zeros(len(live), bool)
    t = 0
    while live.any() and t < max_steps:
        st = rollout.step(None)
        done = live & (np.asarray(st.terminated) | np.asarray(st.truncated))
        finished[done] = np.asarray(st.info["finished"], bool)[done]
        if on_step is not None:
            on_step(t, st, done)
        live &= ~done
        t += 1
        if report is not None and t % 500 == 0:
            print(f"step {t}: {int(live.sum())} racing, {report()}", flush=True)
    return finished
