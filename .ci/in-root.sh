#!/usr/bin/env bash
# Runs inside the Debian root booted by .ci/package-test, with systemd as PID 1: installs the
# package and drives it with systemctl as an operator would. Every wait has a deadline.
# No pipefail: `cmd | grep -q` would fail on the SIGPIPE grep's early exit gives cmd.
set -eu
step() { printf '\n- %s\n' "$*"; }
fail() {
  echo "FAIL: $*" >&2
  journalctl --no-pager -n 60 -u cdktr-principal -u cdktr-agent@1 >&2 || true
  exit 1
}
# until SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds, or fails after SECONDS.
until_ok() {
  local limit=$1
  shift
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}
as_operator() { runuser -u op -- "$@"; }
# drop_workflow ID: a one-task workflow file, as an operator drops it in.
drop_workflow() {
  printf 'name: %s\ntasks:\n  a: {name: A, config: !Shell {script: "echo %s"}}\n' "$1" "$1" \
    >"/etc/cdktr/workflows/$1.yml"
}
listed() { as_operator cdktr workflow list --json | grep -q "\"$1\""; }

step "apt install ./cdktr_*.deb"
cd /
mv /tmp.deb /cdktr_ci.deb
DEBIAN_FRONTEND=noninteractive apt-get install -y -q /cdktr_ci.deb >/tmp/apt.log 2>&1 ||
  { cat /tmp/apt.log; fail "apt install"; }
getent passwd cdktr >/dev/null || fail "no cdktr user"
getent group cdktr >/dev/null || fail "no cdktr group"
[ "$(stat -c %U /var/lib/cdktr/principal.key)" = cdktr ] || fail "the principal's key is not the service user's"
systemctl is-enabled cdktr-principal >/dev/null 2>&1 && fail "the package enabled the principal"
systemctl is-active cdktr-principal >/dev/null 2>&1 && fail "the package started the principal"

step "systemd-analyze verify and security"
systemd-analyze verify /usr/lib/systemd/system/cdktr-principal.service \
  /usr/lib/systemd/system/cdktr-webhook.service || fail "verify"
# Templates are verified through an instance.
cp /usr/lib/systemd/system/cdktr-agent@.service /tmp/cdktr-agent@ci.service
cp /usr/lib/systemd/system/cdktr-files@.service /tmp/cdktr-files@ci.service
systemd-analyze verify /tmp/cdktr-agent@ci.service /tmp/cdktr-files@ci.service || fail "verify templates"
systemd-analyze security --no-pager cdktr-principal | tail -1
systemd-analyze security --no-pager cdktr-agent@1 | tail -1

step "systemctl start cdktr-principal (Type=notify: returns once READY)"
# A watchdog short enough to test, and failpoints, for this test only (a drop-in, as an
# operator would change the unit).
mkdir -p /etc/systemd/system/cdktr-principal.service.d
cat >/etc/systemd/system/cdktr-principal.service.d/ci.conf <<'EOF'
[Service]
Environment=CDKTR_FAILPOINTS=1
WatchdogSec=4s
EOF
systemctl daemon-reload
systemctl start cdktr-principal || fail "start"
[ "$(systemctl is-active cdktr-principal)" = active ] || fail "not active"
systemctl status --no-pager cdktr-principal | grep 'Status:' || fail "no STATUS= line"
until_ok 10 sh -c 'systemctl status --no-pager cdktr-principal | grep -q "Status: \"queue 0"' ||
  fail "no live STATUS= line"
[ -S /run/cdktr/control.sock ] || fail "no control socket"
[ "$(stat -c '%G %a' /run/cdktr/control.sock)" = "cdktr 660" ] || fail "control socket mode: $(stat -c '%G %a' /run/cdktr/control.sock)"

step "an operator in group cdktr"
useradd --create-home --groups cdktr op
as_operator cdktr workflow list | grep -q hello || fail "the operator cannot list workflows"

step "a workflow dropped into /etc/cdktr/workflows is runnable within 2 s"
drop_workflow dropped
dropped=$SECONDS
until_ok 2 listed dropped || fail "the dropped workflow is not loaded within 2 s"
echo "loaded after $((SECONDS - dropped)) s"

step "systemctl start cdktr-agent@1 registers"
systemctl enable --now cdktr-agent@1 || fail "agent start"
until_ok 10 sh -c 'runuser -u op -- cdktr agents list | grep -q "^1@"' || fail "agent 1 did not register"
[ -d /var/lib/cdktr/agent-1 ] || fail "no agent spool directory"

step "cdktr run hello --wait through the control socket"
as_operator cdktr run hello --wait >/tmp/run.out || { cat /tmp/run.out; fail "run hello"; }
grep -q 'by: *local:op' /tmp/run.out || { cat /tmp/run.out; fail "the run does not name the operator who triggered it"; }
as_operator cdktr run dropped --wait || fail "run dropped"
as_operator cdktr runs list | grep -q COMPLETED || fail "no completed run in the history"

step "systemctl reload re-reads the workflows"
drop_workflow reloaded
systemctl reload cdktr-principal || fail "reload"
[ "$(systemctl is-active cdktr-principal)" = active ] || fail "not active after reload"
until_ok 10 listed reloaded || fail "not reloaded"
journalctl --no-pager -u cdktr-principal | grep -q 'SIGHUP' || fail "no SIGHUP in the journal"

step "an upgrade (the package installed again) restarts the running agents on the new binary"
agent_pid=$(systemctl show -p MainPID --value cdktr-agent@1)
DEBIAN_FRONTEND=noninteractive apt-get install --reinstall -y -q /cdktr_ci.deb >/tmp/apt.log 2>&1 ||
  { cat /tmp/apt.log; fail "reinstall"; }
[ "$(systemctl is-active cdktr-principal)" = active ] || fail "the principal is down after the upgrade"
[ "$(systemctl is-active cdktr-agent@1)" = active ] || fail "the agent is down after the upgrade"
[ "$(systemctl show -p MainPID --value cdktr-agent@1)" != "$agent_pid" ] || fail "the agent was not restarted"
until_ok 20 sh -c 'runuser -u op -- cdktr agents list | grep -q "^1@.*alive"' || fail "the agent did not come back"

step "journald: one line per event, with its priority"
journalctl --no-pager -u cdktr-principal -p info -o cat | grep -q 'cdktr::principal' || fail "no component in the lines"
journalctl --no-pager -u cdktr-principal -o cat | grep -q $'\e\[' && fail "colour codes in the journal"
journalctl --no-pager -u cdktr-principal -p warning -o cat | grep -q ' INFO ' &&
  fail "info lines filed as warnings: the priority prefix is not read"

step "the watchdog restarts a principal whose store writer is frozen"
before=$(systemctl show -p MainPID --value cdktr-principal)
as_operator cdktr failpoint store_wedge --for 120s || fail "failpoint"
until_ok 30 sh -c "[ \"\$(systemctl show -p NRestarts --value cdktr-principal)\" -ge 1 ] && [ \"\$(systemctl is-active cdktr-principal)\" = active ]" ||
  fail "the principal was not restarted"
after=$(systemctl show -p MainPID --value cdktr-principal)
[ "$before" != "$after" ] || fail "same pid after the restart"
journalctl --no-pager -u cdktr-principal | grep -qi 'watchdog' || fail "no watchdog line in the journal"
journalctl --no-pager -u cdktr-principal -p err -o cat | grep -q 'not answering' ||
  fail "the unanswered probes are not filed as errors"
# The restarted principal has every run the first one acknowledged.
until_ok 20 sh -c 'runuser -u op -- cdktr runs list --json | grep -q "\"hello\""' || fail "history lost"
restarted=$SECONDS
as_operator cdktr run hello --wait >/dev/null || fail "run after the restart"
echo "a run after the restart completed in $((SECONDS - restarted)) s (the agent registered again)"

step "systemctl stop exits cleanly"
systemctl stop cdktr-principal
[ "$(systemctl show -p Result --value cdktr-principal)" = success ] || fail "principal stop: $(systemctl show -p Result --value cdktr-principal)"
[ "$(systemctl show -p ExecMainStatus --value cdktr-principal)" = 0 ] || fail "principal exit status"

step "apt remove stops the agents it started (enabled, still running); keeps the data"
[ "$(systemctl is-active cdktr-agent@1)" = active ] || fail "the agent is not running"
DEBIAN_FRONTEND=noninteractive apt-get remove -y -q cdktr >/dev/null
[ "$(systemctl is-active cdktr-agent@1)" = active ] && fail "the agent runs on after remove"
[ "$(systemctl show -p Result --value cdktr-agent@1)" = success ] || fail "agent stop: $(systemctl show -p Result --value cdktr-agent@1)"
[ -e /var/lib/cdktr/cdktr.duckdb ] || fail "remove deleted the history"
[ -e /etc/cdktr/cdktr.toml ] || fail "remove deleted the configuration"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q cdktr >/dev/null
rm -f /etc/systemd/system/cdktr-principal.service.d/ci.conf
rmdir /etc/systemd/system/cdktr-principal.service.d
left=$(find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /home/op \) -prune -o \
  -iname '*cdktr*' -print | grep -v '^/cdktr_ci.deb$' || true)
[ -z "$left" ] || fail "left after purge: $left"
getent passwd cdktr >/dev/null && fail "the cdktr user is left"
echo "all steps passed"
