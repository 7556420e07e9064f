#!/bin/sh
# p2ptop-drain.sh: run p2ptop's quick check on this node; when it fails, drain the node with
# p2ptop's one-line reason (`scontrol show node` and `sinfo -R` show it).
#
# For Slurm's HealthCheckProgram (with HealthCheckNodeState=IDLE, so it never competes with a
# job for the GPUs), a Prolog, NHC, or by hand. See docs/FLEETS.md.
#
# Environment, all optional:
#   P2PTOP          the p2ptop binary (default: p2ptop on PATH)
#   P2PTOP_OPTIONS  options before the command, split on spaces: "--devices 0,1",
#                   "--sim hgx-h100" to try the script without GPUs
#   P2PTOP_REPORT   also write the JSON report there (%N is the node's name)
#   SLURM_CONF      where scontrol finds the cluster (default: Slurm's own)
#
# Exit: 0 the node passed (warnings included); 1 the node failed or its GPUs could not be
# examined (no driver, no GPU), and is drained; 2 anything else (p2ptop misused, interrupted):
# the node is left alone, because a mistake in this setup must not drain a whole fleet.
set -u
# slurmd runs a HealthCheckProgram with no PATH at all.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}
export PATH

node=${SLURMD_NODENAME:-$(hostname -s)}
p2ptop=${P2PTOP:-p2ptop}
errors=$(mktemp) || exit 2
trap 'rm -f "$errors"' EXIT

# P2PTOP_OPTIONS is split into words on purpose.
if [ -n "${P2PTOP_REPORT:-}" ]; then
    line=$("$p2ptop" ${P2PTOP_OPTIONS:-} check --quick --format json -o "$P2PTOP_REPORT" 2>"$errors")
else
    line=$("$p2ptop" ${P2PTOP_OPTIONS:-} check --quick 2>"$errors")
fi
status=$?

case $status in
0)
    echo "$line"
    exit 0
    ;;
1) reason=$line ;;
3) reason="cannot examine the GPUs: $(head -n 1 "$errors")" ;;
*)
    echo "p2ptop-drain: p2ptop exited $status; $node is not drained: $(cat "$errors")" >&2
    exit 2
    ;;
esac

reason="p2ptop: $reason"
if ! scontrol update nodename="$node" state=drain reason="$reason"; then
    echo "p2ptop-drain: could not drain $node; its fault: $reason" >&2
    exit 1
fi
echo "p2ptop-drain: drained $node: $reason" >&2
exit 1
