#!/bin/sh
# Starts the PyTorch benchmark server (reference/torch_server.py) with Debian's torch on OpenBLAS. Threads:
# TORCH_THREADS / OMP_NUM_THREADS (default 2) and OPENBLAS_NUM_THREADS (default 1: a second pool on top of
# PyTorch's 2 threads oversubscribes 2 cores); the benchmark harness sets all three after measuring.
# Usage: reference/torch_server.sh   (then JSON commands on stdin; see torch_server.py)
here=$(dirname "$0")
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export TORCH_THREADS=${TORCH_THREADS:-$OMP_NUM_THREADS}
# glibc malloc keeps freed activations for reuse instead of returning each to the kernel and faulting fresh
# pages in on the next forward (every block under 32 MB from the heap, no trimming): measured faster for PyTorch
# on every row tried (bench/README.md, "PyTorch at its best"). Set any of them to override; TORCH_MALLOC=glibc
# leaves glibc's own behaviour, which returns memory sooner (the memory suite measures PyTorch that way).
if [ "${TORCH_MALLOC:-reuse}" = reuse ]; then
  export MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-33554432}
  export MALLOC_TRIM_THRESHOLD_=${MALLOC_TRIM_THRESHOLD_:-4294967296}
  export MALLOC_TOP_PAD_=${MALLOC_TOP_PAD_:-268435456}
fi
exec /usr/bin/python3 "$here/torch_server.py" "$@"
