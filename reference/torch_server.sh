#!/bin/sh
# Starts the PyTorch benchmark server (reference/torch_server.py) with Debian's torch on OpenBLAS, 2 threads.
# Usage: reference/torch_server.sh   (then JSON commands on stdin; see torch_server.py)
here=$(dirname "$0")
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-2}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec /usr/bin/python3 "$here/torch_server.py" "$@"
