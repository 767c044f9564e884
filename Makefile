# indextts.deploy — the two commands that matter:
#   make demo   set up, start the local lab, run site.yml against it
#   make test   everything CI checks (lint, sanity, unit, molecule)
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
COLLECTION_LINK := .cache/collections/ansible_collections/indextts/deploy
LAB_INVENTORY := .lab/inventory.yml
# The lab deploys the real IndexTTS2 at the default pin, from its source archive (GitHub
# is not reachable here), a wheelhouse and tiny random weights made on this host.
INDEXTTS2_PIN ?= 39207d91c30899cad1e7c1b9eb678c241f678e55
INDEXTTS2_SRC ?= $(abspath $(CURDIR)/../shared/indextts2-src)
LAB_ASSETS := $(HOME)/.cache/indextts-deploy
MODULES := $(patsubst plugins/modules/%.py,indextts.deploy.%,$(wildcard plugins/modules/*.py))
ROLES := $(patsubst roles/%/,indextts.deploy.%,$(wildcard roles/*/))

export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.cache/collections
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export INDEXTTS_LAB_IMAGE := $(shell tests/lab/image/build.sh --tag)
export INDEXTTS2_ARCHIVE := $(INDEXTTS2_SRC)/index-tts-$(INDEXTTS2_PIN).tar.gz
export INDEXTTS_WHEELHOUSE ?= $(LAB_ASSETS)/wheelhouse
export INDEXTTS_LAB_WEIGHTS ?= $(LAB_ASSETS)/weights-$(INDEXTTS2_PIN)
export PY_COLORS := 0
export ANSIBLE_FORCE_COLOR := 0

.PHONY: help demo test setup host venv collection image lab-up lab-down \
        lint sanity unit integration molecule bench build clean lab-assets purge

help:
	@echo "make demo   set up, start the local lab, run site.yml against it"
	@echo "make test   lint, sanity, unit tests and every molecule scenario"
	@echo "make lab-down   remove the lab containers"
	@echo "make purge   remove all the lab and the tests left on this machine (README: What the lab leaves behind)"

## Set-up shared by demo and test ---------------------------------------------
setup: host venv collection image lab-assets

host:
	bash tests/lab/host-setup.sh

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt constraints.txt
	@echo "venv: the pinned tools into .venv (usually about 1 min, once)"
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	touch $@

collection:
	mkdir -p $(dir $(COLLECTION_LINK))
	ln -sfn $(CURDIR) $(COLLECTION_LINK)

image: host
	tests/lab/image/build.sh >/dev/null

# The real IndexTTS2's lab assets, cached in ~/.cache/indextts-deploy: the wheelhouse
# golden installs from, and tiny random weights made with its own model classes.
lab-assets: venv
	tests/lab/indextts2/assets.sh $(INDEXTTS2_ARCHIVE) $(INDEXTTS_WHEELHOUSE) $(INDEXTTS_LAB_WEIGHTS)

## The main job ---------------------------------------------------------------
demo: setup lab-up
	ansible-playbook -i $(LAB_INVENTORY) tests/lab/seed-golden.yml
	ansible-playbook -i $(LAB_INVENTORY) site.yml

lab-up: setup
	ansible-playbook tests/lab/lab-up.yml

lab-down: venv
	ansible-playbook tests/lab/lab-down.yml

## What CI checks -------------------------------------------------------------
# One line per stage as it starts (with its usual duration), a table at the end.
test:
	tests/run-stages.sh setup lint build sanity unit integration molecule

lint:
	ansible-lint --profile production --strict

sanity:
	bash tests/sanity.sh

unit:
	pytest -q tests/unit

# The gap matrix: the preflight fails exactly when the real IndexTTS2 fails to start,
# for every file of each pinned release's manifest (about 15 minutes, both pins).
integration:
	pytest -q tests/integration

# One or a few scenarios: make molecule SCENARIOS="molecule/guest molecule/iscsi_target"
molecule:
	tests/run-stages.sh $(or $(SCENARIOS),molecule)

## Benchmarks (not part of test: they print ratios, they do not pass or fail) -----
bench: setup lab-up
	python bench/sync_bench.py
	python bench/fanout_bench.py

# The artifact installs, and its modules and roles document themselves from there.
DOCUMENTED := python3 -c 'import json, sys; want = set(sys.argv[1:]); got = set(json.load(sys.stdin)); \
	sys.exit("missing from the artifact: %s" % sorted(want - got) if want - got else 0)'
build:
	rm -rf .cache/dist .cache/installed
	ansible-galaxy collection build --output-path .cache/dist
	ansible-galaxy collection install --offline --no-deps --force -p .cache/installed \
	    .cache/dist/indextts-deploy-*.tar.gz 2>&1 | grep -v 'is not part of the configured'
	ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/.cache/installed ansible-doc --json -t module $(MODULES) \
	    | $(DOCUMENTED) $(MODULES)
	ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/.cache/installed ansible-doc --json -t role $(ROLES) \
	    | $(DOCUMENTED) $(ROLES)
	@echo "build: $$(ls .cache/dist) installs, and documents its modules and roles"

# Everything the lab and the tests left: containers, images, the guest lab, the assets in
# ~/.cache/indextts-deploy, .venv, .cache, .lab, and dockerd if host-setup started it.
purge:
	tests/lab/purge.sh

clean: lab-down
	rm -rf .cache/dist .cache/installed .cache/sanity .pytest_cache
