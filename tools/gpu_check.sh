#!/usr/bin/env bash
# The GPU checks of the session issue, as one script for a lent device machine (the `device` tool's
# `run`): the CUDA / float16 tests, then CPU vs CUDA throughput of the default model. Results go
# to $OUT (the folder the device tool brings back), or ./gpu-check when run by hand.
#
# On the lent machine (see .library/device): its image has Python 3.12, CPU onnxruntime 1.30 and
# NVIDIA's CUDA 13 / cuDNN 9 pip packages, and reaches no registry. onnxruntime-gpu (255 MB for
# cp312) is over the 64 MiB a call can carry: bring it in parts on a warm machine (files under the
# repo survive between calls while it stays warm), reassemble, and pip install it with --no-deps,
# together with a carried simplejpeg wheel; pyimgcls then builds there from source (pybind11,
# scikit-build-core and cmake are in the image).
set -euo pipefail
OUT="${OUT:-gpu-check}"
mkdir -p "$OUT"
python -m pip install -q ".[test,gpu]" 2>&1 | tail -2
python -c "import onnxruntime as ort; print('providers:', ort.get_available_providers())" | tee "$OUT/providers.txt"
cd "$(mktemp -d)"   # import the installed package, not the source tree
pytest -q -rs "$OLDPWD/tests/test_classifier.py" -k "cuda or float16" 2>&1 | tee "$OUT/tests.txt"
for p in CPUExecutionProvider CUDAExecutionProvider,CPUExecutionProvider; do
  name=$(echo "$p" | cut -d, -f1)
  pyimgcls bench --providers "$p" --batch-size 1,32 --duration 5 --json > "$OUT/bench_$name.json"
  python -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], d['providers'], [(b['batch_size'], round(b['throughput'], 1)) for b in d['batches']])" "$OUT/bench_$name.json" "$name" | tee -a "$OUT/summary.txt"
done
