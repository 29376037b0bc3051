"""gtvision play driven headless by scripted key events records a valid race row."""
import numpy as np
import pandas as pd
import pytest

pygame = pytest.importorskip("pygame")


def test_play_headless_with_scripted_keys_records_a_race(tmp_path, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    from gtvision.play import keyboard_action, play

    def script(step, pressed):  # full throttle, a touch of left steering, stop after 3 s
        return np.array([0.2 if step % 10 == 0 else 0.0, 1.0], np.float32), step >= 30

    row = play("tokyo", name="script", laps=1, out=tmp_path, controls=script, realtime=False)
    assert row["driver"].iloc[0] == "human:script" and 1 <= row["place"].iloc[0] <= 20
    assert row["race_time_s"].iloc[0] == pytest.approx(3.1, abs=0.05)   # 31 control steps
    table = pd.read_csv(tmp_path / "eval_tokyo_human.csv")
    assert len(table) == 1 and set(table.columns) >= {"margin_m", "car_collision_time_s", "place", "finished"}
    play("tokyo", name="script", laps=1, out=tmp_path, controls=script, realtime=False)
    assert list(pd.read_csv(tmp_path / "eval_tokyo_human.csv")["episode"]) == [0, 1]  # races append

    pressed = {k: False for k in (pygame.K_LEFT, pygame.K_RIGHT, pygame.K_UP, pygame.K_DOWN, pygame.K_ESCAPE)}
    pressed.update({pygame.K_LEFT: True, pygame.K_DOWN: True})
    action, stop = keyboard_action(pressed)
    assert action.tolist() == [1.0, -1.0] and not stop
