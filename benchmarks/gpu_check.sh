#!/usr/bin/env bash
# One-shot GPU check (fits in one 10-minute run on a 1-GPU machine):
#   bash benchmarks/gpu_check.sh                      # CUDA: pytest -m device + fp32/bf16 SCANN+
#   bash benchmarks/gpu_check.sh --device cpu --quick # smoke test on a CPU (< 1 min)
# Extra arguments go to benchmarks/gpu_check.py. The JSON lands in $OUT/gpu_check.json when
# OUT is set, else in benchmarks/results/gpu_check.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python

want_cuda=1
case " $* " in *" --device cpu "*|*" --device=cpu "*) want_cuda=0 ;; esac

torch_ok() {  # torch imports (and sees CUDA when a GPU is wanted)
    "$PY" - "$want_cuda" <<'PY' 2>/dev/null
import sys
import torch
sys.exit(0 if sys.argv[1] == "0" or torch.cuda.is_available() else 1)
PY
}
deps_ok() {  # qm9pack is read as data (its own import needs pkg_resources): find it only
    "$PY" -c "import importlib.util as u, atomlens, pytest, pandas; assert u.find_spec('qm9pack')" \
        2>/dev/null
}

if torch_ok; then
    if ! deps_ok; then
        # keep the installed (CUDA) torch: install atomlens and its other requirements only
        echo "gpu_check: installing atomlens next to the present torch" >&2
        "$PY" -m pip install -q --no-deps -e .
        "$PY" - <<'PY' > /tmp/atomlens_requirements.txt
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
deps = project["dependencies"] + project["optional-dependencies"]["qm9"] + ["pytest>=8"]
print("\n".join(d for d in deps if not d.replace(" ", "").startswith("torch")))
PY
        "$PY" -m pip install -q -r /tmp/atomlens_requirements.txt
    fi
else
    echo "gpu_check: no usable torch (with CUDA); installing atomlens[dev]" >&2
    "$PY" -m pip install -q -e '.[dev]'
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
exec "$PY" benchmarks/gpu_check.py "$@"
