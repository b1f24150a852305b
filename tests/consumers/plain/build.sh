#!/bin/sh
# The consumer service built with plain compiler flags, no build system:
#   ./build.sh INCLUDE_DIR     (an install's include/, or a checkout's)
set -eu
include_dir=$(cd "${1:?usage: build.sh INCLUDE_DIR}" && pwd)
cd "$(dirname "$0")"
${CXX:-c++} -std=c++20 -DTHREADED -I"$include_dir" -o service ../service.cpp -lzookeeper_mt -lpthread
