#!/bin/sh
# Stop script of the demo application.
set -eu
dir=$(dirname "$0")/state
rm -f "$dir/app.$VIGIL_SERVER"
