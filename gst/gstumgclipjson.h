/* umgclipjson: writes the umgclip metadata of every frame as one JSON object in DL Streamer's
 * gvametaconvert layout, to a file, to stdout or as element messages. */
#pragma once

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS

#define GST_TYPE_UMGCLIP_JSON (gst_umgclip_json_get_type ())
G_DECLARE_FINAL_TYPE (GstUmgClipJson, gst_umgclip_json, GST, UMGCLIP_JSON, GstBaseTransform)

GST_ELEMENT_REGISTER_DECLARE (umgclipjson);

G_END_DECLS
