#!/bin/sh
# File in, annotated file out: every frame is segmented (panoptic), each segment tagged, the
# result drawn on the video and written as one JSON object per frame.
#
#   pipelines/annotate_file.sh input.mp4 annotated.mkv annotated.json
#
# Environment: LABELS (comma-separated, free text), STUFF_LABELS (the labels that are regions
# such as road or sky, not countable objects), UMGCLIP_MODEL (model directory; unset: the
# elements' default), UMGCLIP_DEVICE (auto|vulkan|cpu, default auto), THRESHOLD (minimum
# score of a segment or tag, 0..1, default 0.5), MIN_AREA (segments smaller than this many
# frame pixels are neither reported nor drawn, default 64), FRAMES (also write every
# annotated frame as a PNG, a multifilesink location such as frames/%04d.png).
set -eu

if [ $# -ne 3 ]; then
  echo "usage: $0 INPUT OUTPUT.mkv OUTPUT.json" >&2
  exit 2
fi
input=$1 output=$2 json=$3
labels=${LABELS:-person,car,bicycle,dog,road,building,sky,tree}
stuff=${STUFF_LABELS:-road,building,sky,tree}
device=${UMGCLIP_DEVICE:-auto}
threshold=${THRESHOLD:-0.5}
min_area=${MIN_AREA:-64}
model=${UMGCLIP_MODEL:+model=$UMGCLIP_MODEL}
frames=${FRAMES:-}

# H.264 needs gst-plugins-ugly; VP8 comes with gst-plugins-good. Matroska holds either.
if gst-inspect-1.0 --exists x264enc; then
  encoder="x264enc speed-preset=veryfast"
else
  encoder="vp8enc deadline=1 cpu-used=8"
fi

# umgclipenc runs the backbone once and attaches the dense features; umgclipseg and
# umgcliptag reuse them instead of running the model again. videoconvert before the analysis
# is only needed for formats the elements do not take (RGB, RGBA, RGBx, BGRx, BGRA, NV12,
# I420 pass straight through). -e turns Ctrl-C into end-of-stream so the file stays playable.
# $encoder and $model are meant to split into words.
# shellcheck disable=SC2086
exec gst-launch-1.0 -e \
  filesrc location="$input" ! decodebin ! videoconvert \
  ! umgclipenc device="$device" $model \
  ! umgclipseg mode=panoptic threshold="$threshold" min-area="$min_area" \
      labels="$labels" stuff-labels="$stuff" device="$device" $model \
  ! umgcliptag inference-region=segments threshold="$threshold" \
      labels="$labels" device="$device" $model \
  ! umgclipoverlay min-area="$min_area" \
  ! umgclipjson location="$json" \
  ! tee name=annotated \
  annotated. ! queue ! videoconvert ! $encoder ! matroskamux ! filesink location="$output" \
  ${frames:+annotated. ! queue ! videoconvert ! pngenc ! multifilesink location="$frames"}
