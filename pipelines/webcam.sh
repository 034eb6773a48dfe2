#!/bin/sh
# Webcam, live: tags the whole frame and any panoptic segments with free-text labels and
# shows the annotated video in a window; the JSON goes to stdout.
#
#   LABELS="a cup,a phone,a face,a hand,a desk" pipelines/webcam.sh [/dev/video0]
#
# Environment: LABELS, THRESHOLD, UMGCLIP_MODEL, UMGCLIP_DEVICE as in annotate_file.sh; INTERVAL
# (analyse every Nth frame, default 2: results are carried to the frames in between).
set -eu

camera=${1:-/dev/video0}
labels=${LABELS:-person,face,hand,cup,phone,keyboard,chair,wall}
device=${UMGCLIP_DEVICE:-auto}
threshold=${THRESHOLD:-0.5}
interval=${INTERVAL:-2}
model=${UMGCLIP_MODEL:+model=$UMGCLIP_MODEL}

# qos=true: when the model is slower than the camera, inference is skipped (and the last
# result reused), never frames; the display sink stays in sync with the camera clock.
# shellcheck disable=SC2086
exec gst-launch-1.0 -e \
  v4l2src device="$camera" ! video/x-raw,width=640,height=480 ! videoconvert \
  ! umgclipseg mode=panoptic threshold="$threshold" \
      labels="$labels" inference-interval="$interval" qos=true \
      device="$device" $model \
  ! umgcliptag inference-region=segments threshold="$threshold" \
      labels="$labels" inference-interval="$interval" \
      qos=true device="$device" $model \
  ! umgclipoverlay \
  ! umgclipjson \
  ! videoconvert ! autovideosink
