#!/bin/sh
# Monitor of the demo application: healthy while its state file exists.
dir=$(dirname "$0")/state
test -f "$dir/app.$VIGIL_SERVER"
