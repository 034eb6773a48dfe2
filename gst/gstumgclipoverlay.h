/* umgclipoverlay: draws what the umgclip elements found (segmentation masks, region boxes and
 * their best tags) onto the video, in place, from metadata only. */
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>
#include <gst/video/gstvideofilter.h>

G_BEGIN_DECLS

#define GST_TYPE_UMGCLIP_OVERLAY (gst_umgclip_overlay_get_type ())
G_DECLARE_FINAL_TYPE (GstUmgClipOverlay, gst_umgclip_overlay, GST, UMGCLIP_OVERLAY, GstVideoFilter)

GST_ELEMENT_REGISTER_DECLARE (umgclipoverlay);

G_END_DECLS
