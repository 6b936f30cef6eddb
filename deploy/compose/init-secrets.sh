#!/bin/sh
# Writes the compose stack's secrets once, with random values (openssl), into
# deploy/compose/secrets/ (git-ignored). An existing file is kept: re-running
# never rotates a key behind your back (a new pseudonym key re-keys every
# customer: docs/security.md, "Rotating the key"). Usage: init-secrets.sh [DIR]
set -eu
dir="${1:-$(cd "$(dirname "$0")" && pwd)/secrets}"
mkdir -p "$dir"
umask 077

put() {  # put FILE CONTENT
  if [ -e "$dir/$1" ]; then echo "kept    $dir/$1"; else printf '%s\n' "$2" > "$dir/$1"; echo "wrote   $dir/$1"; fi
}

put pseudonym.key "$(openssl rand -hex 32)"
put clickhouse.password "$(openssl rand -hex 24)"
put grafana-admin.password "$(openssl rand -hex 16)"
put api.token "$(openssl rand -hex 32)"
put ingest.env "CTI_MAIN_SECRET=$(openssl rand -hex 32)
CHAT_MAIN_SECRET=$(openssl rand -hex 32)"
# The chat tools' webhook keys of deploy/alertmanager/notify.yaml: replace the
# placeholders with your groups' keys (notify starts with them, and its deliveries
# fail until they are real: vocflow_notify_failures_total).
put notify.env "WECOM_BILLING_KEY=replace-me
DINGTALK_NETWORK_TOKEN=replace-me
DINGTALK_NETWORK_SECRET=replace-me
FEISHU_TECH_SUPPORT_HOOK=replace-me
FEISHU_TECH_SUPPORT_SECRET=replace-me
WECOM_RETENTION_KEY=replace-me
WECOM_COMPLAINTS_KEY=replace-me
SLACK_OPS_PATH=replace-me
TICKETING_SECRET=replace-me-with-at-least-16-bytes"
# The containers run as uid 10001 (vocflow), 472 (grafana) and 101 (clickhouse);
# compose mounts file secrets as they are on the host: make them readable.
chmod 0644 "$dir"/pseudonym.key "$dir"/clickhouse.password "$dir"/grafana-admin.password \
  "$dir"/api.token
