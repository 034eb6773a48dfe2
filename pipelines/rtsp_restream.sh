#!/bin/sh
# RTSP in, annotated RTSP out: re-streams a camera (or any URI) with segments and tags drawn
# on it, at rtsp://ADDRESS:PORT/annotated. A thin wrapper of rtsp_restream.py, which
# gst-launch-1.0 cannot do (serving RTSP needs gst-rtsp-server).
#
#   pipelines/rtsp_restream.sh rtsp://camera.local/stream
#   ffplay rtsp://127.0.0.1:8554/annotated
#
# Environment: LABELS, STUFF_LABELS, UMGCLIP_MODEL, UMGCLIP_DEVICE as in annotate_file.sh;
# PORT (default 8554), ADDRESS (default 127.0.0.1; 0.0.0.0 to serve the network).
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 INPUT_URI" >&2
  exit 2
fi
here=$(dirname "$0")
exec /usr/bin/python3 "$here/rtsp_restream.py" --input "$1" \
  --labels "${LABELS:-person,car,bicycle,dog,road,building,sky,tree}" \
  --stuff-labels "${STUFF_LABELS:-road,building,sky,tree}" \
  --address "${ADDRESS:-127.0.0.1}" --port "${PORT:-8554}"
