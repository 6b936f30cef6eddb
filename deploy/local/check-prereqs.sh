#!/bin/sh
# Checks the tools `make demo` / `make test` need before anything is installed,
# and says exactly what to install when one is missing. POSIX sh on purpose:
# it must run on a machine that has nothing else yet.
fail=0
need() { printf 'vocflow: missing prerequisite: %s\n  install: %s\n' "$1" "$2" >&2; fail=1; }

PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then
  need "Python 3.11+ ($PY not found)" "apt-get install python3 python3-venv (or pyenv install 3.11)"
elif ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  need "Python 3.11+ ($PY is $("$PY" -V 2>&1))" "a Python 3.11 or newer, then PYTHON=python3.11 make ..."
fi

if [ -n "${VOCFLOW_KAFKA_BOOTSTRAP:-}" ]; then
  : # an external cluster: no local broker, so neither Java nor Maven is needed
elif ! command -v java >/dev/null 2>&1; then
  need "Java 17+ (java not found; it runs the local Kafka broker)" "apt-get install openjdk-17-jre-headless"
else
  major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9][0-9]*\).*/\1/p' | head -n 1)
  if [ -z "$major" ] || [ "$major" -lt 17 ]; then
    need "Java 17+ (found: ${major:-unknown})" "apt-get install openjdk-17-jre-headless"
  fi
fi
if [ -z "${VOCFLOW_KAFKA_BOOTSTRAP:-}" ] && ! command -v mvn >/dev/null 2>&1; then
  need "Maven (mvn not found; it fetches the Kafka broker jars from Maven Central)" "apt-get install maven"
fi
exit $fail
