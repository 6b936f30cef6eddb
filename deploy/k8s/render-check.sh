#!/bin/sh
# Renders every overlay with kubectl's built-in kustomize and validates it with
# kubernetes-validate (strict), as `make deploy-check` does. The overlays need the
# operator's secret files: this renders a copy of deploy/k8s in which each missing
# one is a placeholder, so it checks the manifests, never real secrets.
# Usage: render-check.sh BIN_DIR OUT_DIR K8S_VERSION...
set -eu
bin="$1"; out="$2"; shift 2
here="$(cd "$(dirname "$0")" && pwd)"
copy="$(mktemp -d)"
trap 'rm -rf "$copy"' EXIT
cp -R "$here/." "$copy/"
mkdir -p "$out"
for overlay in "$copy"/overlays/*/; do
  name="$(basename "$overlay")"
  for f in $(grep -o 'secrets/[A-Za-z0-9._-]*' "$overlay/kustomization.yaml"); do
    [ -e "$overlay/$f" ] || echo "PLACEHOLDER=not-a-secret" > "$overlay/$f"
  done
  "$bin/kubectl" kustomize "$overlay" > "$out/$name.yaml"
  echo "== $name: $(grep -c '^kind:' "$out/$name.yaml") objects rendered to $out/$name.yaml"
  for version in "$@"; do
    "$bin/kubernetes-validate" --strict --quiet -k "$version" "$out/$name.yaml"
    echo "   kubernetes-validate --strict -k $version: every object with a schema passed (the ServiceMonitor CRD has none: tests/deploy/test_k8s.py checks it)"
  done
done
