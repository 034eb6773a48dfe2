#!/bin/sh
# RTSP camera in, JSON out: tags each frame of a network camera with free-text labels and
# appends one JSON object per analysed frame to a file. Stop with Ctrl-C.
#
#   pipelines/rtsp_camera_to_json.sh rtsp://user:pass@camera.local/stream tags.json
#
# A camera that goes away (reboot, power, network) is reconnected with back-off while the model
# stays loaded, and the gap is marked in the file with "source-lost" / "source-restored" event
# lines: gst-launch-1.0 cannot rebuild a failed source, so this runs rtsp_camera_to_json.py.
# The pipeline it runs is, in gst-launch terms:
#
#   rtspsrc location=URL protocols=tcp latency=LATENCY ! decodebin ! videoconvert
#     ! umgcliptag inference-region=full-frame threshold=... labels=... qos=true
#     ! umgclipjson location=OUTPUT.json ! fakesink sync=false
#
# Environment: LABELS, THRESHOLD, UMGCLIP_MODEL, UMGCLIP_DEVICE as in annotate_file.sh; INTERVAL
# (analyse every Nth frame, default 1); LATENCY (jitter buffer in ms, default 200);
# RECONNECT_MIN_MS / RECONNECT_MAX_MS (back-off, default 500 / 10000); STALL_S (no frame for this
# long counts as lost, default 10).
set -eu

if [ $# -ne 2 ]; then
  echo "usage: $0 RTSP_URL OUTPUT.json" >&2
  exit 2
fi
# TCP interleaving gets through NAT and firewalls that drop RTP over UDP. decodebin picks the
# depayloader and decoder for whatever the camera sends (H.264, H.265, MJPEG, ...). qos=true on a
# live source: late frames skip inference and carry the last tags instead of stalling the stream.
exec /usr/bin/python3 "$(dirname "$0")/rtsp_camera_to_json.py" "$1" "$2"
