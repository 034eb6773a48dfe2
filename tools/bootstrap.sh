#!/usr/bin/env bash
# Install what a fresh Debian 12 machine lacks, build, and then either show the runtime at work
# (demo) or run every test (test): the Debian 12 suite here, then the same suite on Debian 13
# (GStreamer 1.26, GstAnalytics) in the chroot that tools/debian13.sh makes. Run as root, from
# anywhere.
#   bash tools/bootstrap.sh demo
#   bash tools/bootstrap.sh test
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$top/build"
# the packages of tools/packages.list for this release (bookworm)
packages=()
while read -r package release _; do
  [[ -z "$package" || "$package" == \#* ]] && continue
  [[ -z "$release" || "$release" == debian12 ]] && packages+=("$package")
done < "$top/tools/packages.list"

install_missing() {
  local missing=()
  for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
      || missing+=("$package")
  done
  if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

build() {
  if [[ ! -f "$build/build.ninja" ]]; then
    meson setup "$build" "$top" --buildtype=debugoptimized
  fi
  ninja -C "$build"
}

demo() {
  local umgclip="$build/tools/umgclip" out="$build/demo" things stuff
  export GST_PLUGIN_PATH="$build/gst"
  rm -rf "$out" && mkdir -p "$out"
  echo "== the shipped model (models/umgclip-tiny, trained by training/; the default everywhere)"
  "$umgclip" info
  echo "== 12 generated scenes whose colour-shape pairings the model never saw in training"
  /usr/bin/python3 "$top/training/scenes.py" --split heldout --count 12 --seed 1 --out "$out/scenes"
  things=$(/usr/bin/python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
print(",".join(d["thing_tags"]))' "$out/scenes/annotations.json")
  stuff="sky,grass,water,sand,wall"
  echo "== zero-shot: the best tags for the first scene (truth: $(/usr/bin/python3 -c 'import json, sys
print(json.load(open(sys.argv[1]))["scenes"][0]["caption"])' "$out/scenes/annotations.json"))"
  "$umgclip" classify "$out/scenes/heldout-000000.png" --labels "$things" | cut -c 1-300
  echo "== the scenes as a clip through umgclipenc ! umgclipseg ! umgcliptag ! umgclipoverlay ! umgclipjson"
  gst-launch-1.0 -q multifilesrc location="$out/scenes/heldout-%06d.png" index=0 stop-index=11 \
    caps=image/png,framerate=2/1 ! pngdec ! videoscale method=nearest-neighbour \
    ! video/x-raw,width=256,height=256 ! videoconvert ! video/x-raw,format=I420 ! matroskamux ! filesink location="$out/clip.mkv"
  mkdir -p "$out/frames"
  # segments under 512 of the 256x256 frame's pixels (32 at the model's 64x64) are fragments,
  # not things: the smallest thing of 200 held-out scenes shows 51 model pixels
  LABELS="$things,$stuff" STUFF_LABELS="$stuff" THRESHOLD=0.3 MIN_AREA=512 \
    FRAMES="$out/frames/%02d.png" \
    sh "$top/pipelines/annotate_file.sh" "$out/clip.mkv" "$out/annotated.mkv" \
    "$out/annotated.jsonl" > /dev/null
  echo "annotated video: $out/annotated.mkv"
  /usr/bin/python3 - "$out/frames" "$out/scenes/annotations.json" "$out/contact-sheet.png" <<'PY'
import json, os, sys
from PIL import Image, ImageDraw
frames = sorted(os.listdir(sys.argv[1]))
captions = [s["caption"] for s in json.load(open(sys.argv[2]))["scenes"]]
tiles = [Image.open(os.path.join(sys.argv[1], f)).convert("RGB") for f in frames]
w, h, columns = tiles[0].width, tiles[0].height, 4
rows = (len(tiles) + columns - 1) // columns
sheet = Image.new("RGB", (columns * w, rows * (h + 28)), "white")
draw = ImageDraw.Draw(sheet)
for i, (tile, caption) in enumerate(zip(tiles, captions)):
    x, y = i % columns * w, i // columns * (h + 28)
    sheet.paste(tile, (x, y))
    # the truth under each frame, in two lines at most
    words, lines = caption.replace("a photo of ", "").split(), [""]
    for word in words:
        if len(lines[-1]) + len(word) > w // 6 - 1:
            lines.append("")
        lines[-1] += (" " if lines[-1] else "") + word
    draw.text((x + 2, y + h + 1), "\n".join(lines[:2]), fill="black")
sheet.save(sys.argv[3])
print("contact sheet (%d annotated frames, the truth under each): %s" % (len(tiles), sys.argv[3]))
PY
  echo "JSON ($(wc -l < "$out/annotated.jsonl") frames): $out/annotated.jsonl; the first frame:"
  head -n 1 "$out/annotated.jsonl" | cut -c 1-700
  echo
  echo "== what was found in each scene, against its caption"
  /usr/bin/python3 - "$out/annotated.jsonl" "$out/scenes/annotations.json" <<'PY'
import json, sys
frames = [json.loads(line) for line in open(sys.argv[1])]
data = json.load(open(sys.argv[2]))
stuff = set(data["stuff_names"])
right = false = missed = 0
for frame, scene in zip(frames, data["scenes"]):
    truth = {t["tag"] for t in scene["things"]}
    found = sorted({o["detection"]["label"] for o in frame.get("objects", [])} - stuff)
    right += len(truth & set(found))
    false += len(set(found) - truth)
    missed += len(truth - set(found))
    print("%-50s found: %s" % (scene["caption"], ", ".join(
        t + ("" if t in truth else " (false)") for t in found) or "nothing"))
print("things: %d found right, %d missed, %d false (a colour or shape the scene lacks)"
      % (right, missed, false))
PY
}

case "${1:-}" in
  demo) install_missing; build; demo ;;
  test)
    install_missing
    build
    # the chroot first: the Debian 12 suite's PostgreSQL test runs its server there
    bash "$top/tools/debian13.sh" ensure
    echo "== Debian 13 chroot ready after ${SECONDS} s"
    status=0
    meson test -C "$build" --print-errorlogs || status=$?
    echo "== the Debian 12 suite ended with status $status after ${SECONDS} s"
    start=$SECONDS
    bash "$top/tools/debian13.sh" test || status=$((status ? status : $?))
    echo "== the Debian 13 suite ended after $((SECONDS - start)) s; overall status $status"
    exit "$status"
    ;;
  *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac
