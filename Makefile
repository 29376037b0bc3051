# gtvision: everything runs from a local virtual environment made on first use.
#   make race    the main job: train the agent (cpu preset, MINUTES minutes, alone on the track), then race
#                it from the back of a 20-car grid against the built-in AI -> runs/agent_<scenario>_<time>/
#   make biai-race  a 4-lap, 20-car race of the built-in AI alone -> runs/race_<scenario>.mp4
#   make test    unit tests, then the notebooks under nbval
#   make bench   simulator throughput next to gymnasium's CarRacing-v3, then the envs next to the simulator
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SCENARIO ?= tokyo
LAPS ?= 4
MINUTES ?= 10
RACES ?= 4
# a new run directory per call: nothing made before is overwritten
RUN := runs/agent_$(SCENARIO)_$(shell date +%Y%m%d-%H%M%S)
# torch 2.13.0 first: on these machines it is the stored CPU build; the package itself asks only torch>=2.3
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup race biai-race test test-unit test-notebooks bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test,bench]"
	touch $@

setup: $(BIN)/.installed

race: $(BIN)/.installed
	$(BIN)/gtvision train --scenario $(SCENARIO) --preset cpu --env-arg num_opponents=0 \
	  --env-arg start_speed_mps=20 --env-arg stuck_s=3 --minutes $(MINUTES) --checkpoint-every 50 --out $(RUN)
	$(BIN)/gtvision evaluate --checkpoint $(RUN) --scenario $(SCENARIO) --episodes $(RACES) --laps $(LAPS) \
	  --out $(RUN)/eval
	$(BIN)/gtvision video --checkpoint $(RUN) --scenario $(SCENARIO) --laps 1 --out $(RUN)/race.mp4

biai-race: $(BIN)/.installed
	$(BIN)/gtvision race --scenario $(SCENARIO) --laps $(LAPS) --video runs/race_$(SCENARIO).mp4 --out runs

test: test-unit test-notebooks

test-unit: $(BIN)/.installed
	$(BIN)/python -m pytest -q tests

test-notebooks: $(BIN)/.installed
	$(BIN)/python -m pytest -q --nbval-lax notebooks

bench: $(BIN)/.installed
	$(BIN)/gtvision bench sim
	$(BIN)/gtvision bench env

clean:
	rm -rf $(VENV) runs .pytest_cache
