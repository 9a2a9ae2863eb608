# Set-up is automatic: every target that needs Python creates .venv (once) from requirements*.txt.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The optional Ray engine of the batch CLI: the tests install it, `make run` does not.
RAY_STAMP := $(VENV)/.ray-installed
HOST ?= 127.0.0.1
PORT ?= 5000
SHARED ?= ../shared/data

.PHONY: run dev test test-fast venv data train-cnn train-efficientnet evaluate clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)  ## serve the API and the page with the shipped weights: the production server (granian, a worker per core)
	$(PY) -m backend.serve --bind $(HOST):$(PORT)

dev: $(STAMP)  ## Flask's own server with its reloader, for working on the code (not for production)
	$(PY) -m backend --host $(HOST) --port $(PORT) --reload

$(RAY_STAMP): $(STAMP) requirements-ray.txt
	$(PY) -m pip install --quiet -r requirements-ray.txt
	touch $(RAY_STAMP)

test: $(STAMP) $(RAY_STAMP) browser-deps  ## the whole suite
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

data: $(STAMP)  ## unpack CIFAKE (pre-decoded), the photo corpus and sd-vs-coco-200 into data/
	$(PY) prepare_data.py --source $(SHARED)/cifake.tar.gz
	$(PY) prepare_data.py --source $(SHARED)/photos-v1.tar.gz
	mkdir -p data && tar xzf $(SHARED)/sd-vs-coco-200.tar.gz -C data/
	tar xzf $(SHARED)/provenance-fixtures.tar.gz -C data/

train-cnn: $(STAMP)
	$(PY) train_cnn.py --resume

train-efficientnet: $(STAMP)  ## the shipped EfficientNet-B0's recipe: the config's 40 epochs, distilled from saved_models/cnn.pt
	$(PY) train_efficientnet.py --distill-from saved_models/cnn.pt --resume

.PHONY: train-photo photo-audit evaluate-photo lofo

train-photo: $(STAMP)  ## both photo models on data/photos-v1 (the shipped recipe; one core each, in parallel)
	$(PY) train_cnn.py --profile photo --threads 1 --resume & \
	$(PY) train_efficientnet.py --profile photo --threads 1 --resume; wait

photo-audit: $(STAMP)  ## docs/photo-data.md: how well trivial cues separate the photo corpus's classes
	$(PY) -m utils.evaluation.photo_audit

LOFO_FAMILIES := GAN DALL-E Midjourney Stable_Diffusion other_diffusion
LOFO_EPOCHS ?= 6

lofo: $(STAMP)  ## leave-one-family-out: the photo CNN retrained without each generator family (runs/lofo/)
	for family in $(LOFO_FAMILIES); do \
		$(PY) train_cnn.py --profile photo --hold-out-family "$${family//_/ }" --epochs $(LOFO_EPOCHS) \
			--run-dir runs/lofo/$$family --output runs/lofo/$$family/cnn_photo.pt --resume || exit 1; \
	done

evaluate-photo: $(STAMP)  ## docs/photo-evaluation.md: the photo pair on validation, sd-vs-coco-200, robustness, LOFO
	$(PY) evaluate.py --profile photo --fit-pair --lofo-dir runs/lofo --robustness-sample 200

evaluate: $(STAMP)  ## the reports committed under docs/reports
	$(PY) evaluate.py --data-dir data/cifake/test --output docs/reports/cifake-test --title "CIFAKE test" --dedupe-against data/cifake/train
	$(PY) evaluate.py --data-dir data/sd-vs-coco-200 --output docs/reports/sd-vs-coco-200 --title "sd-vs-coco-200"

clean-venv:
	rm -rf $(VENV)

.PHONY: css browser-deps screenshots

screenshots: $(STAMP) browser-deps  ## refresh docs/screenshots from a real browser run with the shipped weights
	UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q tests/frontend/test_page_browser.py -k screenshots

css:  ## rebuild frontend/assets/app.css with Tailwind (needs Node; the built file is committed, serving needs no Node)
	if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
	npm run build:css

browser-deps:  ## headless Chromium and its driver from Debian packages, for tests/frontend/test_page_browser.py
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		echo "installing chromium and chromium-driver (apt-get, needs root)"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; \
	fi

.PHONY: report

HARDENED ?= runs/hardened
HARDENED_WEIGHTS := $(wildcard $(HARDENED)/cnn.pt $(HARDENED)/efficientnet_b0.pt)

report: $(STAMP)  ## docs/evaluation.md: FGSM, corruption and out-of-domain robustness of the shipped models, and of $(HARDENED)/ when both files are there
	$(PY) robustness_report.py --data-dir data/cifake/test --title "CIFAKE test" --ood-dir data/sd-vs-coco-200 --ood-title "Out of domain: sd-vs-coco-200" --output docs/evaluation.md --assets-dir docs/evaluation $(if $(word 2,$(HARDENED_WEIGHTS)),--compare-weights $(HARDENED_WEIGHTS))

.PHONY: train-hardened

train-hardened: $(STAMP)  ## FGSM fine-tuning of the shipped models into $(HARDENED)/ (2 epochs each, about 25 min on 2 CPU cores)
	$(PY) train_cnn.py --init-from saved_models/cnn.pt --adversarial --epochs 2 --lr 0.0005 --warmup-epochs 0.2 --output $(HARDENED)/cnn.pt --run-dir runs/cnn-adv --resume
	$(PY) train_efficientnet.py --init-from saved_models/efficientnet_b0.pt --adversarial --epochs 2 --lr 0.0005 --warmup-epochs 0.2 --output $(HARDENED)/efficientnet_b0.pt --run-dir runs/eff-adv --resume

.PHONY: bench

bench: $(STAMP)  ## load test of the production server and batch CLI throughput (bench/results/); run on a quiet machine
	$(PY) bench/load_test.py
	$(PY) bench/cli_batch.py
