"""A person drives from the agent's seat (paper IV-C's human rows): ``gtvision play``.

A pygame window shows the same ego view the agent gets (at video size); the keyboard (or a gamepad's
left stick and triggers) drives the agent's car in an evaluation race (``gtvision.env.RACE``: 4 laps
from the back of a 20-car grid, BoP off) at the simulator's 10 Hz. When the race ends, its row is
written in the evaluation table format of :func:`gtvision.evaluation.evaluate`, with the driver
``human:<name>``, so human races appear in the figures beside the agent's.

Keys: left / right arrows steer (one 3-degree step of delta steering per control step), up is full
throttle, down is full brake, Esc ends the race. ``controls`` replaces the keyboard with a scripted
function (tests drive it headless with ``SDL_VIDEODRIVER=dummy``).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from .scenarios import SCENARIO_NAMES


def keyboard_action(pressed) -> tuple[np.ndarray, bool]:
    """(2,) action from pygame's pressed-key state, and whether Esc asks to stop."""
    import pygame

    steer = float(pressed[pygame.K_LEFT]) - float(pressed[pygame.K_RIGHT])  # + = left
    pedal = float(pressed[pygame.K_UP]) - float(pressed[pygame.K_DOWN])
    return np.array([steer, pedal], np.float32), bool(pressed[pygame.K_ESCAPE])


def play(scenario: str = "tokyo", name: str = "player", laps: int = 4, seed: int = 0, out: str | os.PathLike = "runs/human",
         controls: Callable[[int, object], tuple[np.ndarray, bool]] | None = None, realtime: bool = True,
         max_steps: int | None = None) -> pd.DataFrame:
    """Drive one race; returns (and appends to ``out/eval_<scenario>_human.csv``) its table row.

    ``controls(step, pressed_keys) -> (action, stop)``; None reads the keyboard (and a gamepad if one is
    plugged in). ``realtime`` paces the loop at 10 Hz. ``max_steps`` cuts the race short.
    """
    import gymnasium as gym
    import pygame

    from .env import ENV_IDS, RACE

    if scenario not in SCENARIO_NAMES:
        raise ValueError(f"unknown scenario {scenario!r}; valid: {', '.join(SCENARIO_NAMES)}")
    env = gym.make(ENV_IDS[scenario], render_mode="rgb_array", **{**RACE, "laps": laps})
    obs, info = env.reset(seed=seed)
    pygame.init()
    frame = env.render()
    screen = pygame.display.set_mode((frame.shape[1], frame.shape[0]))
    pygame.display.set_caption(f"gtvision play: {scenario}, {laps} laps from the back of the grid")
    clock = pygame.time.Clock()
    pad = pygame.joystick.Joystick(0) if pygame.joystick.get_count() > 0 else None
    laps_seen, lap_times, step = 0, [], 0
    done = False
    try:
        while not done:
            pygame.event.pump()
            if controls is not None:
                action, stop = controls(step, pygame.key.get_pressed())
            else:
                action, stop = keyboard_action(pygame.key.get_pressed())
                if pad is not None and not action.any():
                    action = np.array([-pad.get_axis(0), (pad.get_axis(5) - pad.get_axis(4)) / 2], np.float32)
            obs, _, terminated, truncated, info = env.step(np.asarray(action, np.float32))
            if info["laps_done"] > laps_seen:
                lap_times.append(float(info["last_lap_time_s"]))
                laps_seen = info["laps_done"]
            frame = env.render()
            screen.blit(pygame.surfarray.make_surface(np.ascontiguousarray(frame.transpose(1, 0, 2))), (0, 0))
            pygame.display.flip()
            step += 1
            done = terminated or truncated or stop or (max_steps is not None and step >= max_steps)
            if realtime:
                clock.tick(10)
    finally:
        pygame.quit()
        env.close()
    row = pd.DataFrame([{"driver": f"human:{name}", "variant": "human", "scenario": scenario, "episode": 0,
                         "margin_m": info["margin_m"],
                         "car_collision_time_s": info["car_contact_time_s"], "place": int(info["place"]),
                         "wall_time_s": info["wall_time_s"], "off_course_time_s": info["off_course_time_s"],
                         "finished": bool(info["finished"]), "race_time_s": info["time_s"],
                         **{f"lap_{k + 1}_s": t for k, t in enumerate(lap_times[:laps])}}])
    path = Path(out) / f"eval_{scenario}_human.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        previous = pd.read_csv(path)
        row["episode"] = len(previous)
        row = pd.concat([previous, row], ignore_index=True)
    row.to_csv(path, index=False)
    return row.tail(1)
