# gtvision: everything runs from a local virtual environment made on first use.
#   make race    the main job: train the agent (cpu preset, MINUTES minutes, alone on the track), then race
#                it from the back of a 20-car grid against the built-in AI -> runs/agent_<scenario>_<time>/
#   make biai-race  a 4-lap, 20-car race of the built-in AI alone -> runs/race_<scenario>.mp4
#   make test    unit tests, then the notebooks under nbval
#   make bench   simulator throughput next to gymnasium's CarRacing-v3, then the envs next to the simulator
#   make ablations  the paper's V-C ablations on a short schedule, two at a time, raced -> Figure 6
#                in runs/ablations_<scenario>/ (EPOCHS=200: about 2 h on 2 cores)
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

# ablations (paper V-C, Figure 6): the agent and each variant, EPOCHS epochs of the cpu preset with the network
# reset at RESET_EPOCH (the preset's 1250 of 2000, scaled), one thread each, two at a time; each run's checkpoint
# with the best mean margin over 8 races (seed 1000) is raced ABLATION_RACES times (seed 0)
ABLATIONS ?= asymmetric symmetric_critic zero_hidden hidden_128 no_rnn no_aug no_reset
EPOCHS ?= 200
RESET_EPOCH ?= 125
ABLATION_RACES ?= 64
ABL ?= runs/ablations_$(SCENARIO)

.PHONY: setup race biai-race test test-unit test-notebooks bench ablations clean

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

ablations: $(BIN)/.installed
	$(MAKE) -j2 $(foreach v,$(ABLATIONS),$(ABL)/$(v)/raced)
	$(BIN)/papermill notebooks/07_figures.ipynb $(ABL)/07_figures.ipynb -p ablations "$(ABL)/eval/*.csv" \
	  -p out_dir $(ABL)/figures

$(ABL)/%/raced:
	$(BIN)/gtvision train --scenario $(SCENARIO) --preset cpu --variant $* --env-arg num_opponents=0 \
	  --env-arg start_speed_mps=20 --env-arg stuck_s=3 --set train.epochs=$(EPOCHS) \
	  $(if $(filter no_reset,$*),,--set train.reset_epoch=$(RESET_EPOCH)) --checkpoint-every 50 \
	  --keep-checkpoints 10 --seed 0 --threads 1 --quiet --out $(ABL)/$*
	$(BIN)/gtvision select $(ABL)/$* --scenario $(SCENARIO) --laps $(LAPS) --episodes 8 --max-collision inf --seed 1000 \
	  --threads 1 --quiet --out $(ABL)/select > $(ABL)/$*/select.txt
	$(BIN)/gtvision evaluate --checkpoint $$(sed -n 's/^selected: \([^ ]*\).*/\1/p' $(ABL)/$*/select.txt) \
	  --scenario $(SCENARIO) --laps $(LAPS) --episodes $(ABLATION_RACES) --seed 0 --threads 1 --quiet --out $(ABL)/eval
	touch $@

clean:
	rm -rf $(VENV) runs .pytest_cache
