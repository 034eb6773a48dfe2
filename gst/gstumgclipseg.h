/* umgclipseg: open-vocabulary semantic and panoptic segmentation of each frame, attached as
 * GstUmgClipSegmentationMeta (and its custom twin), with panoptic things also as ROI metas. */
#pragma once

#include "gstumgclipfilter.h"

G_BEGIN_DECLS

#define GST_TYPE_UMGCLIP_SEG (gst_umgclip_seg_get_type ())
G_DECLARE_FINAL_TYPE (GstUmgClipSeg, gst_umgclip_seg, GST, UMGCLIP_SEG, GstUmgClipFilter)

typedef enum
{
  GST_UMGCLIP_SEG_MODE_SEMANTIC, /* one segment per label */
  GST_UMGCLIP_SEG_MODE_PANOPTIC, /* things split into instances, stuff merged per label */
} GstUmgClipSegMode;

#define GST_TYPE_UMGCLIP_SEG_MODE (gst_umgclip_seg_mode_get_type ())
GType gst_umgclip_seg_mode_get_type (void);

GST_ELEMENT_REGISTER_DECLARE (umgclipseg);

G_END_DECLS
