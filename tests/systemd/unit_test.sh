#!/bin/bash
# Checks zulip-bridge.service (issue 9): that systemd accepts it, that its sandbox stays tight,
# and that the commands it runs exist.
#
# Usage: unit_test.sh UNIT_FILE ZULIP_BRIDGE_BINARY
#
# 1. `systemd-analyze verify` on a copy whose Exec lines run the built binary: any complaint
#    (an unknown or misplaced directive, a missing executable) fails the test.
# 2. Every sandbox directive below is present: removing one fails the test even when systemd's
#    score would not notice (DynamicUser= implies some of them).
# 3. `systemd-analyze security --offline=yes` rates the unit 2.0 or lower, and lists no
#    exposure beyond the accepted ones (network access, which the daemon exists for, and the
#    host's root file system).
# 4. ExecStartPre, with the binary and config paths swapped for test ones, accepts a config whose
#    key comes from the credential directory as the unit names it (key_<file name>).
# 5. ExecReload runs the waiting `reload` command: with no daemon to answer it fails and says
#    so (a reload that cannot be confirmed must not look applied to systemctl).
# Without systemd-analyze the test is skipped (exit 77) on a developer's machine and fails under
# CI=true.
set -euo pipefail

unit=$1
binary=$(realpath "$2")
max_exposure=2.0

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
if ! command -v systemd-analyze >/dev/null; then
  if [ "${CI:-}" = "true" ]; then fail "systemd-analyze not found (CI=true: not skipping)"; fi
  echo "SKIP: systemd-analyze not found (Debian package systemd)" >&2
  exit 77
fi
[ -f "$unit" ] || fail "no unit file at $unit"
[ -x "$binary" ] || fail "no executable at $binary"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- 1. verify -------------------------------------------------------------------------------
# The copy keeps the unit's name (verify derives the unit type from it).
sed -e "s#^\(Exec[A-Za-z]*=[-+!@:]*\)/usr/bin/zulip-bridge #\1$binary #" "$unit" \
  >"$work/zulip-bridge.service"
grep -q "^ExecStart=$binary " "$work/zulip-bridge.service" ||
  fail "ExecStart does not run /usr/bin/zulip-bridge"
grep -q "^ExecStartPre=$binary " "$work/zulip-bridge.service" ||
  fail "ExecStartPre does not run /usr/bin/zulip-bridge"
grep -q "^ExecReload=$binary reload " "$work/zulip-bridge.service" ||
  fail "ExecReload does not run /usr/bin/zulip-bridge reload"
if ! verify_out=$(cd "$work" && systemd-analyze verify ./zulip-bridge.service 2>&1) ||
  [ -n "$verify_out" ]; then
  fail "systemd-analyze verify complained:
$verify_out"
fi
echo "ok: systemd-analyze verify is silent"

# --- 2. required directives ------------------------------------------------------------------
required=(
  "Type=notify"
  "NotifyAccess=main"
  "WatchdogSec=30s"
  "Restart=on-failure"
  "RestartPreventExitStatus=64 78"
  # Above kafka.flush_timeout_secs' default of 30 s.
  "TimeoutStopSec=90s"
  "LoadCredential=key:/etc/zulip-bridge/credentials"
  "DynamicUser=yes"
  "StateDirectory=zulip-bridge"
  "StateDirectoryMode=0700"
  "UMask=0077"
  "LimitNOFILE=65536"
  "CapabilityBoundingSet="
  "AmbientCapabilities="
  "KeyringMode=private"
  "DevicePolicy=closed"
  "SystemCallErrorNumber=EPERM"
  "NoNewPrivileges=yes"
  "ProtectSystem=strict"
  "ProtectHome=yes"
  "PrivateTmp=yes"
  "PrivateDevices=yes"
  "PrivateUsers=yes"
  "PrivateIPC=yes"
  "PrivateMounts=yes"
  "ProtectHostname=yes"
  "ProtectClock=yes"
  "ProtectKernelTunables=yes"
  "ProtectKernelModules=yes"
  "ProtectKernelLogs=yes"
  "ProtectControlGroups=yes"
  "ProtectProc=invisible"
  "ProcSubset=pid"
  "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX"
  "RestrictNamespaces=yes"
  "RestrictRealtime=yes"
  "RestrictSUIDSGID=yes"
  "LockPersonality=yes"
  "MemoryDenyWriteExecute=yes"
  "RemoveIPC=yes"
  "SystemCallArchitectures=native"
  "SystemCallFilter=@system-service"
  "SystemCallFilter=~@privileged @resources"
)
for line in "${required[@]}"; do
  grep -qxF "$line" "$unit" || fail "$unit lacks the line '$line'"
done
echo "ok: all ${#required[@]} required directives present"

# --- 3. exposure -----------------------------------------------------------------------------
security_out=$(cd "$work" && systemd-analyze security --offline=yes --no-pager \
  ./zulip-bridge.service 2>&1) || fail "systemd-analyze security failed:
$security_out"
exposure=$(printf '%s\n' "$security_out" |
  sed -n 's/.*Overall exposure level for zulip-bridge.service: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || fail "no 'Overall exposure level' in:
$security_out"
awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }' ||
  fail "exposure $exposure is above $max_exposure:
$security_out"
# The exposures accepted on purpose; see the comments in the unit.
accepted='^(RootDirectory=/RootImage=|RestrictAddressFamilies=~AF_UNIX|RestrictAddressFamilies=~AF_\(INET\|INET6\)|PrivateNetwork=|IPAddressDeny=|DeviceAllow=)$'
unexpected=$(printf '%s\n' "$security_out" | awk '$1 == "✗" { print $2 }' | grep -Ev "$accepted" || true)
[ -z "$unexpected" ] || fail "exposures not accepted by this test: $unexpected
$security_out"
echo "ok: exposure $exposure (at most $max_exposure), only the accepted exposures"

# --- 4. ExecStartPre runs a real command --------------------------------------------------------
mkdir -p "$work/credentials" "$work/state"
printf 'test-api-key-0123456789\n' >"$work/credentials/key_analytics.key"
cat >"$work/zulip-bridge.yaml" <<EOF
kafka:
  brokers: [127.0.0.1:9]
state_dir: $work/state
http:
  listen: 127.0.0.1:9
accounts:
  - name: analytics
    site: https://chat.example.com
    email: analytics-bot@chat.example.com
    systemd_credential: key_analytics.key
EOF
pre=$(sed -n 's/^ExecStartPre=//p' "$work/zulip-bridge.service")
# Word splitting is what systemd does to this line too (no quotes in it).
# shellcheck disable=SC2086
set -- ${pre//\/etc\/zulip-bridge\/zulip-bridge.yaml/$work/zulip-bridge.yaml}
if ! check_out=$(CREDENTIALS_DIRECTORY="$work/credentials" "$@" 2>&1); then
  fail "ExecStartPre ($*) failed:
$check_out"
fi
case $check_out in
  *test-api-key-0123456789*) fail "ExecStartPre printed the API key" ;;
esac
echo "ok: ExecStartPre accepts a config with a systemd credential"

# --- 5. ExecReload waits for an answer ----------------------------------------------------------
reload=$(sed -n 's/^ExecReload=//p' "$work/zulip-bridge.service")
# shellcheck disable=SC2086
set -- ${reload//\/etc\/zulip-bridge\/zulip-bridge.yaml/$work/zulip-bridge.yaml}
if reload_out=$(CREDENTIALS_DIRECTORY="$work/credentials" "$@" 2>&1); then
  fail "ExecReload ($*) succeeded with no daemon running:
$reload_out"
fi
case $reload_out in
  *"is it running?"*) ;;
  *) fail "ExecReload ($*) did not say that no daemon answered:
$reload_out" ;;
esac
echo "ok: ExecReload runs zulip-bridge reload, which fails when no daemon answers"
