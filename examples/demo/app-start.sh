#!/bin/sh
# Start script of the demo application: records who runs it.
set -eu
dir=$(dirname "$0")/state
mkdir -p "$dir"
echo "$VIGIL_SERVER $VIGIL_EVENT $(date +%s%N)" > "$dir/app.$VIGIL_SERVER"
