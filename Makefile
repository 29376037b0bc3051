# gtvision: everything runs from a local virtual environment made on first use.
#   make race    the main job: train the agent (cpu preset, MINUTES minutes, alone on the track), then race
#                it from the back of a 20-car grid against the built-in AI -> runs/agent_<scenario>_<time>/
#   make biai-race  a 4-lap, 20-car race of the built-in AI alone -> runs/race_<scenario>.mp4
#   make test    unit tests, then the notebooks under nbval
#   make bench   simulator throughput next to gymnasium's CarRacing-v3, then the envs next to the simulator
#   make reproduce  the papermill batch: the notebooks executed with papermill_runs/params/*.yaml into
#                papermill_runs/<run>/ (python -m gtvision.reproduce); a subset: make reproduce SCENARIOS=tokyo
#                VARIANTS=no_rnn; more runner flags in REPRODUCE_ARGS (e.g. "-f papermill_runs/params/quick.yaml")
#   make ablations  the paper's V-C ablations through the batch, two at a time: papermill_runs/ablation_<variant>/
#                and Figure 6 in papermill_runs/figure_6/ (200 epochs each: about 2 h on 2 cores)
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

# the papermill batch (gtvision/reproduce.py): scenario runs SCENARIOS, variant runs VARIANTS (both empty: all)
SCENARIOS ?=
VARIANTS ?=
REPRODUCE_ARGS ?=
# ablations (paper V-C, Figure 6): the agent and each variant, their schedule in papermill_runs/params/ablation_*.yaml
# (200 epochs of the cpu preset, the network reset at epoch 125 except no_reset, the checkpoint with the best mean
# margin over 8 races (seed 1000) raced 64 times (seed 0)), two runs at a time
ABLATIONS ?= asymmetric symmetric_critic zero_hidden hidden_128 no_rnn no_aug no_reset
JOBS ?= 2

.PHONY: setup race biai-race test test-unit test-notebooks bench reproduce ablations clean

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

reproduce: $(BIN)/.installed
	$(BIN)/python -m gtvision.reproduce $(if $(SCENARIOS),--scenarios $(SCENARIOS)) \
	  $(if $(VARIANTS),--variants $(VARIANTS)) $(REPRODUCE_ARGS)

ablations: $(BIN)/.installed
	$(BIN)/python -m gtvision.reproduce --variants $(ABLATIONS) --jobs $(JOBS) $(REPRODUCE_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
