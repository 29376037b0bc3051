# gtvision: everything runs from a local virtual environment made on first use.
#   make race    the main job, the recipe of LOG.md's "The vision agent": train the GT Sophy baseline in traffic
#                (TEACHER_STEPS steps), pick its best checkpoint by IV-D's rule, distil it into the vision agent
#                (DISTILL_ROUNDS DAgger rounds), pick the best round from DISTILL_FROM_ROUND by IV-D's rule, then race
#                that agent from the back of a 20-car grid against the built-in AI -> runs/agent_<scenario>_<time>/
#                (its parts, measured beside other runs in runs MR1 and MS1, add up to about 87 min on the machine
#                of 2026-12-01; 249 min on an AMD EPYC with AVX2, run MR3: README "Quick start"); TEACHER=DIR
#                skips the first two steps (TEACHER=papermill_runs/agents/tokyo_gt_sophy DISTILL_DIVERGENCE=forward:
#                run V21's recipe, the vision agent committed until the twenty-eighth session)
#   make biai-race  a 4-lap, 20-car race of the built-in AI alone -> runs/race_<scenario>.mp4
#   make test    unit tests, then the notebooks under nbval, TEST_WORKERS at a time (pytest-xdist; 2: this
#                project's 2-core machines and CI; a notebook's cells stay on one worker: --dist loadfile)
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
RACES ?= 4
TEST_WORKERS ?= 2
# the recipe (LOG.md, "The vision agent"): a GT Sophy teacher of TEACHER_STEPS environment steps (275 epochs: with
# --seed 0 --threads 1 these are R1's first 275, whose epoch 250 won 98 of 100 held-out races), its checkpoints from
# TEACHER_FROM_EPOCH raced 8 times each (seed 1000) and the best mean margin kept, then DISTILL_ROUNDS rounds of DAgger
# on DISTILL_DIVERGENCE (reverse: KL(student || teacher), LOG.md "The vision agent", run V7)
TEACHER ?=
TEACHER_STEPS ?= 44000
TEACHER_FROM_EPOCH ?= 150
DISTILL_ROUNDS ?= 14
DISTILL_DIVERGENCE ?= reverse
# the DAgger rounds from DISTILL_FROM_ROUND on raced 8 times each (seed 1000), the best mean margin kept (IV-D's rule):
# from round to round the student's races swing (run V17), so the last round is not taken on trust
DISTILL_FROM_ROUND ?= 6
# DISTILL_RACE_STARTS=1: each DAgger episode draws how it begins, half as the curriculum's (random starts, 0 to 19
# opponents with BoP, rolling), half as a race's (the back of the full grid, 19 opponents, standing, BoP off): runs
# V21 and MS1 (make race's teacher: 95 of 100 held-out races won, where 0 gave 62); 0: the curriculum's alone
DISTILL_RACE_STARTS ?= 1
RACE_STARTS := --env-arg 'situations=[{}, {"start":"grid_back","num_opponents":19,"start_speed_mps":0,"bop":false}]'
RACING_ENV := --env-arg start_speed_mps=20 --env-arg stuck_s=3 --env-arg max_time_s=240
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
	mkdir -p $(RUN) && date +%s > $(RUN)/started
ifeq ($(TEACHER),)
	$(BIN)/gtvision train --scenario $(SCENARIO) --preset cpu --variant gt_sophy $(RACING_ENV) \
	  --total-steps $(TEACHER_STEPS) --checkpoint-every 25 --keep-checkpoints 100 --seed 0 --threads 1 --out $(RUN)/gt_sophy
	$(BIN)/gtvision select $(RUN)/gt_sophy --scenario $(SCENARIO) --episodes 8 --seed 1000 --max-collision inf \
	  --from-epoch $(TEACHER_FROM_EPOCH) --threads 1 --out $(RUN)/gt_sophy/races_seed1000 --export $(RUN)/teacher
endif
	$(BIN)/gtvision train --scenario $(SCENARIO) --preset cpu --teacher $(or $(TEACHER),$(RUN)/teacher) \
	  --set train.reset_epoch=null --set train.distill_rounds=$(DISTILL_ROUNDS) \
	  --set train.distill_divergence=$(DISTILL_DIVERGENCE) $(RACING_ENV) \
	  $(if $(filter 1,$(DISTILL_RACE_STARTS)),$(RACE_STARTS)) --minutes 0 \
	  --checkpoint-every 25 --seed 0 --threads 1 --out $(RUN)/vision
	$(BIN)/gtvision select $(RUN)/vision/distill --scenario $(SCENARIO) --episodes 8 --seed 1000 --max-collision inf \
	  --from-epoch $(DISTILL_FROM_ROUND) --threads 1 --out $(RUN)/vision/distill/races_seed1000 --export $(RUN)/agent
	$(BIN)/gtvision evaluate --checkpoint $(RUN)/agent --scenario $(SCENARIO) --episodes $(RACES) --laps $(LAPS) \
	  --out $(RUN)/eval
	$(BIN)/gtvision video --checkpoint $(RUN)/agent --scenario $(SCENARIO) --laps 1 --out $(RUN)/race.mp4
	@echo "make race: $$(( ($$(date +%s) - $$(cat $(RUN)/started)) / 60 )) minutes in all (training, selection, races," \
	  "video) -> $(RUN)"

biai-race: $(BIN)/.installed
	$(BIN)/gtvision race --scenario $(SCENARIO) --laps $(LAPS) --video runs/race_$(SCENARIO).mp4 --out runs

test: test-unit test-notebooks

test-unit: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=25 tests

test-notebooks: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=10 --nbval-lax notebooks

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
