#!/usr/bin/env bash
# Sets up a fresh machine for TDOS-HF: a virtual environment in .venv with torch, the package and its
# test extras, and WordNet 3.0 for nltk (offline, from Debian packages). Idempotent; safe to re-run.
# TDOS_SETUP_BROWSER=1 also installs the web demo (extra `app`: Gradio) and what its headless-browser test needs:
# Debian's chromium + chromium-driver (apt) and Selenium (extra `browser`).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${TDOS_VENV:-.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
# torch first, pinned: the CUDA build runs on the CPU and has a matching torchvision (docs/method.md §8).
"$VENV/bin/python" -m pip install -q torch==2.14.1 torchvision==0.29.1
"$VENV/bin/python" -m pip install -q -e ".[test]"
if [ "${TDOS_SETUP_BROWSER:-0}" = 1 ]; then
  "$VENV/bin/python" -m pip install -q -e ".[test,app,browser]"
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
  fi
fi

# WordNet 3.0 for nltk, without a network download: Debian's files copied (nltk refuses paths outside its
# data roots) into <venv>/nltk_data, one of nltk's default roots, plus the lexnames file nltk needs
# (`tdos.ood_prompts.install_wordnet`).
WN_DIR="$VENV/nltk_data/corpora/wordnet"
if [ ! -f "$WN_DIR/lexnames" ]; then
  if [ ! -f /usr/share/wordnet/data.noun ] || [ ! -f /usr/share/wordnet/index.sense ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends wordnet-base wordnet-sense-index >/dev/null
  fi
  "$VENV/bin/python" -m tdos.ood_prompts --install-wordnet --nltk-data "$VENV/nltk_data"
fi
echo "TDOS-HF environment ready in $VENV"
