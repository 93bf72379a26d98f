#!/usr/bin/env bash
# Installs what building and testing slastream needs on a fresh Debian
# machine, skipping whatever is already there. Safe to run repeatedly.
#   libclang-dev  RocksDB's bindgen (build)
#   g++, make     RocksDB and librdkafka (build)
# With --test, also what the tests run against:
#   prometheus (promtool), prometheus-alertmanager (amtool), docker-compose
#   (`docker-compose config` validates the compose file; no engine needed),
#   chromium (the web UI's pages loaded headless with JavaScript off)
set -euo pipefail

need_apt=()
if [ "${1:-}" = "--test" ]; then
  command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
  command -v amtool >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
  command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
fi
# bindgen loads libclang.so (or libclang-N.so); libclang-cpp, which a fresh
# machine may have, is not enough.
if ! compgen -G '/usr/lib/llvm-*/lib/libclang.so' >/dev/null && ! compgen -G '/usr/lib/*/libclang-[0-9]*.so*' >/dev/null; then
  need_apt+=(libclang-dev)
fi
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
command -v make >/dev/null 2>&1 || need_apt+=(make)

if ((${#need_apt[@]})); then
  echo "setup: installing ${need_apt[*]}" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
