#!/bin/bash
# Where a memory budget's cuts round differently from the whole frame, on the H200: every conv
# shape of a 1920x1080 decode against the same conv over its top half of rows and over its first
# frame alone (`exec cuts`; the debug lines name the cuDNN engine each shape ran and whether it
# was its family's), then whole decodes against frame groups, bands and parked bands.
# Carry .dev/run = {exec}; re-runnable from scratch; logs under $OUT. T=0: the convs of one latent
# frame alone (no decodes compared).
set -u
. benches/scripts/h200_exec_env.sh
exec_weights
RUST_LOG=seedvae_exec=debug timeout 400 .dev/run/exec cuts $W ${H:-1080} ${WIDTH:-1920} ${T:-2} > $OUT/cuts.txt 2>&1
echo "exec cuts exit $?"
grep -av "^\S*20[0-9][0-9]-" $OUT/cuts.txt
grep -a "engine\|timed anew\|does not build" $OUT/cuts.txt | sed 's/.*conv Geometry { x: Dims { //' | cut -c1-300 | head -80
