/* umgcliptag: ranks free-text labels for every region of interest of a frame (the whole
 * frame, upstream ROI metas, or panoptic segments) and writes them as "umgclip" ROI params. */
#pragma once

#include "gstumgclipfilter.h"

G_BEGIN_DECLS

#define GST_TYPE_UMGCLIP_TAG (gst_umgclip_tag_get_type ())
G_DECLARE_FINAL_TYPE (GstUmgClipTag, gst_umgclip_tag, GST, UMGCLIP_TAG, GstUmgClipFilter)

/* Which regions are tagged (DL Streamer's inference-region, plus segments). */
typedef enum
{
  GST_UMGCLIP_TAG_REGION_FULL_FRAME,
  GST_UMGCLIP_TAG_REGION_ROI_LIST,
  GST_UMGCLIP_TAG_REGION_SEGMENTS,
} GstUmgClipTagRegion;

#define GST_TYPE_UMGCLIP_TAG_REGION (gst_umgclip_tag_region_get_type ())
GType gst_umgclip_tag_region_get_type (void);

/* How a region's embedding is obtained. */
typedef enum
{
  GST_UMGCLIP_TAG_REGION_MODE_ROI_ALIGN,
  GST_UMGCLIP_TAG_REGION_MODE_CROP,
} GstUmgClipTagRegionMode;

#define GST_TYPE_UMGCLIP_TAG_REGION_MODE (gst_umgclip_tag_region_mode_get_type ())
GType gst_umgclip_tag_region_mode_get_type (void);

GST_ELEMENT_REGISTER_DECLARE (umgcliptag);

G_END_DECLS
