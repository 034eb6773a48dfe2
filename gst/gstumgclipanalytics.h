/* GstAnalytics (gst-plugins-bad's relation meta) in and out of the umgclip elements: the one place
 * that writes and reads it. Built only where meson found gstreamer-analytics-1.0 >= 1.24
 * (HAVE_GST_ANALYTICS); segmentation and tensors need 1.26 (HAVE_GST_ANALYTICS_1_26). What each
 * version gets, ids and relation types: docs/ANALYTICS.md. */
#pragma once

#include <gst/gst.h>
#include <gst/analytics/analytics.h>

#include "umgclipmeta.h"

G_BEGIN_DECLS

/* The GstTensor id (a GQuark of this string) of the frame embedding: FLOAT32, dims [1, dim],
 * row-major, L2-normalised. */
#define GST_UMGCLIP_ANALYTICS_EMBEDDING_TENSOR_ID "umgclip-embedding"

/* Relations between a detection and its classification, both ways, as upstream and DL Streamer
 * write them: the OD mtd CONTAINs the classification, which IS_PART_OF the OD mtd. */
#define GST_UMGCLIP_ANALYTICS_OD_TO_CLS GST_ANALYTICS_REL_TYPE_CONTAIN
#define GST_UMGCLIP_ANALYTICS_CLS_TO_OD GST_ANALYTICS_REL_TYPE_IS_PART_OF

/* An object-detection mtd of the buffer as a region to tag: its box clipped to the frame. */
typedef struct
{
  guint od_id; /* the mtd's id in the buffer's relation meta */
  GQuark type;
  gint x, y, w, h; /* frame pixels, inside the frame, w and h > 0 */
} GstUmgClipDetection;

/* A classification mtd of tags (an "umgclip" param structure: tags and scores, best first) for the
 * region (x, y, w, h) on buffer, related both ways to an object-detection mtd: od_id when it is
 * not G_MAXUINT (an upstream detection), else the OD mtd on buffer with the same box, whatever its
 * type (umgclipseg's for its things, an earlier tagger's), else a new one whose type is the best
 * tag and whose confidence is the best score. Nothing is written when no tag passed threshold.
 * Returns the id of the classification mtd, G_MAXUINT when nothing was written. */
guint gst_umgclip_analytics_add_tags (GstBuffer *buffer, gint x, gint y, gint w, gint h,
                                      const GstStructure *tags, guint od_id);

/* seg (made for this buffer's frame size): a one-class classification for every segment and an
 * OD mtd containing it for every thing, and on 1.26 a segmentation mtd whose mask holds segment
 * ids (0: none) at mask resolution, placed over the whole frame, containing them all. */
void gst_umgclip_analytics_add_segmentation (GstBuffer *buffer,
                                             const GstUmgClipSegmentationMeta *seg);

/* On 1.26, the embedding as a tensor of the buffer's GstTensorMeta (added, or appended to
 * upstream's), under GST_UMGCLIP_ANALYTICS_EMBEDDING_TENSOR_ID. A no-op on 1.24. */
void gst_umgclip_analytics_add_embedding (GstBuffer *buffer,
                                          const GstUmgClipEmbeddingMeta *embedding);

/* The object-detection mtds of buffer, in a frame of frame_width × frame_height, as an array of
 * GstUmgClipDetection: boxes clipped to the frame; boxes of zero size or wholly outside (with a
 * debug message), and detections that a region-of-interest meta with the same box already stands
 * for, are left out. Never NULL. */
GArray *gst_umgclip_analytics_get_detections (GstBuffer *buffer, gint frame_width,
                                              gint frame_height);

G_END_DECLS
