#!/bin/sh
# RTSP camera in, JSON out: tags each frame of a network camera with free-text labels and
# appends one JSON object per analysed frame to a file. Stop with Ctrl-C.
#
#   pipelines/rtsp_camera_to_json.sh rtsp://user:pass@camera.local/stream tags.json
#
# Environment: LABELS, THRESHOLD, UMGCLIP_MODEL, UMGCLIP_DEVICE as in annotate_file.sh; INTERVAL
# (analyse every Nth frame, default 1); LATENCY (jitter buffer in ms, default 200).
set -eu

if [ $# -ne 2 ]; then
  echo "usage: $0 RTSP_URL OUTPUT.json" >&2
  exit 2
fi
url=$1 json=$2
labels=${LABELS:-person,car,truck,bicycle,dog,empty street}
device=${UMGCLIP_DEVICE:-auto}
threshold=${THRESHOLD:-0.5}
interval=${INTERVAL:-1}
latency=${LATENCY:-200}
model=${UMGCLIP_MODEL:+model=$UMGCLIP_MODEL}

# TCP interleaving gets through NAT and firewalls that drop RTP over UDP. decodebin picks
# the depayloader and decoder for whatever the camera sends (H.264, H.265, MJPEG, ...).
# qos=true on a live source: late frames skip inference and carry the last tags instead of
# stalling the stream. sync=false: nothing is displayed, so frames need not wait for the clock.
# shellcheck disable=SC2086
exec gst-launch-1.0 -e \
  rtspsrc location="$url" protocols=tcp latency="$latency" ! decodebin ! videoconvert \
  ! umgcliptag inference-region=full-frame threshold="$threshold" \
      labels="$labels" inference-interval="$interval" \
      qos=true device="$device" $model \
  ! umgclipjson location="$json" \
  ! fakesink sync=false
