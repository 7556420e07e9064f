#!/bin/sh
# Remakes the pictures of the live view: runs the real binary in tmux on simulated machines,
# captures the pane with its colours and draws it as PNG.
#
# Needs tmux, python3 with Pillow (pip install pillow) and DejaVu Sans Mono (fonts-dejavu-core).
# Run from anywhere: sh screenshots/make.sh   (the throttling picture runs the simulation at 4×
# real time, P2PTOP_SIM_SPEED=4, so two simulated minutes take about thirty seconds; its header
# says so)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"
cargo build --quiet --bin p2ptop
bin="${CARGO_TARGET_DIR:-$root/target}/debug/p2ptop"
work=$(mktemp -d)
session="p2ptop-shots-$$"
trap 'tmux kill-session -t "$session" 2>/dev/null || true; rm -rf "$work"' EXIT

# shot NAME PRESET SECONDS [KEYS...]: start the view, press KEYS, wait SECONDS, capture.
# SPEED (default 1) is how many simulated seconds pass per real one.
shot() {
    name=$1 preset=$2 wait=$3
    shift 3
    tmux new-session -d -s "$session" -x 160 -y 48 "P2PTOP_SIM_SPEED=${SPEED:-1} $bin --sim $preset"
    sleep 1
    for key in "$@"; do
        tmux send-keys -t "$session" "$key"
        sleep 0.3
    done
    sleep "$wait"
    tmux capture-pane -e -p -t "$session" > "$work/$name.ans"
    tmux send-keys -t "$session" q
    sleep 0.5
    tmux kill-session -t "$session" 2>/dev/null || true
    python3 "$here/render.py" "$work/$name.ans" "$here/$name.png" 160 48
    echo "screenshots/$name.png"
}

shot 3090-bridge 3090-bridge 12
shot hgx-h100-bidir hgx-h100 40 b Down Right Right
SPEED=4 shot 3090-bridge-throttling 3090-bridge 30 m
