#!/usr/bin/env bash
# Regenerates every committed golden and checkpoint fixture with the reference implementation.
# Usage: tools/reference/regen.sh [VENV_DIR]
#   VENV_DIR: a venv built by ../shared/reference/setup-reference-env.sh (default: $SADTALKER_REF_VENV,
#   else ~/.cache/sadtalker-reference). Configs: $SADTALKER_CONFIG_DIR (default
#   ../shared/reference/config).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-${SADTALKER_REF_VENV:-}}"
if [ -z "$venv" ]; then
  for v in "$HOME/.cache/sadtalker-reference"; do [ -x "$v/bin/python" ] && venv="$v" && break; done
fi
if [ -z "$venv" ] || [ ! -x "$venv/bin/python" ]; then
  echo "no reference venv found: build one with ../shared/reference/setup-reference-env.sh [DIR] and pass DIR" >&2
  exit 2
fi
py="$venv/bin/python"
cd "$here"
for script in gen_op_goldens.py gen_op_goldens_pad.py gen_checkpoint_fixtures.py gen_nn_goldens.py gen_enhance_layout.py; do
  echo "== $script"
  "$py" "$script"
done
# Other areas add their generators here (they skip themselves when their inputs are missing).
for script in gen_*_goldens.py; do
  case "$script" in gen_op_goldens.py|gen_nn_goldens.py) continue ;; esac
  echo "== $script"
  "$py" "$script"
done
echo "== key manifest of the official checkpoints"
"$py" make_official_checkpoints.py "$(mktemp -d)" --keys-only
