/* Public metadata of the umgclip elements: image embeddings, segmentation maps and the
 * "umgclip" tag structure on region-of-interest metas. Installed; link with gstumgclipmeta-1.0. */
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>

G_BEGIN_DECLS

/* GstUmgClipEmbeddingMeta: what umgclipenc saw in a frame.
 *
 * The embedding does not depend on the frame size, so the meta survives copies, colour
 * conversion and scaling unchanged. The dense map, when present, is a grid over the whole
 * frame: cell (row, col) covers frame pixels [col × frame_width / grid_width, ...). */
typedef struct
{
  GstMeta meta;

  gchar *model;      /* model id: the basename of the model directory */
  guint dim;         /* embedding dimension */
  gfloat *embedding; /* dim floats, L2-normalised */

  /* Dense map, or dense == NULL when only the global embedding was computed. */
  gchar *dense_mode; /* "naclip", "clearclip", "sclip" or "maskclip" */
  guint input_width; /* network input the map was computed from, in pixels */
  guint input_height;
  guint grid_width; /* input_width / patch size */
  guint grid_height;
  gfloat *dense; /* grid_height × grid_width × dim floats, row-major, as the runtime returns
                  * them: projected, not normalised (normalise a cell for its cosine with a
                  * text; pool regions from the raw cells, then normalise) */

  /* The pts of the frame this was computed from: a frame that carries an older result (the
   * elements' schedule=latest, inference-interval) has a later pts of its own.
   * GST_CLOCK_TIME_NONE when unknown. */
  GstClockTime source_pts;
} GstUmgClipEmbeddingMeta;

GType gst_umgclip_embedding_meta_api_get_type (void);
#define GST_UMGCLIP_EMBEDDING_META_API_TYPE (gst_umgclip_embedding_meta_api_get_type ())
const GstMetaInfo *gst_umgclip_embedding_meta_get_info (void);
#define GST_UMGCLIP_EMBEDDING_META_INFO (gst_umgclip_embedding_meta_get_info ())

/* Attaches a copy of embedding (dim floats, already L2-normalised by the caller). */
GstUmgClipEmbeddingMeta *gst_buffer_add_umgclip_embedding_meta (GstBuffer *buffer,
                                                                const gchar *model,
                                                                const gfloat *embedding, guint dim);
/* Sets (replaces) the dense part with a copy of dense: grid_height × grid_width × meta->dim. */
void gst_umgclip_embedding_meta_set_dense (GstUmgClipEmbeddingMeta *meta, const gchar *dense_mode,
                                           guint input_width, guint input_height, guint grid_width,
                                           guint grid_height, const gfloat *dense);
#define gst_buffer_get_umgclip_embedding_meta(buffer)                                              \
  ((GstUmgClipEmbeddingMeta *) gst_buffer_get_meta ((buffer), GST_UMGCLIP_EMBEDDING_META_API_TYPE))

/* One entry of the panoptic segment table. */
typedef struct
{
  guint id;          /* value of this segment in the instance map (1..65535) */
  guint label_id;    /* index into the meta's labels */
  gfloat score;      /* mean probability of label_id over the segment, 0..1 */
  gboolean is_thing; /* a countable object (split into instances), else stuff (merged) */
  gint x, y, w, h;   /* bounding box in frame pixels */
  guint area;        /* in mask pixels */
} GstUmgClipSegment;

/* Value of class-map pixels that belong to no label. */
#define GST_UMGCLIP_CLASS_NONE_8 255
#define GST_UMGCLIP_CLASS_NONE_16 65535

/* GstUmgClipSegmentationMeta: which pixels of the frame are what.
 *
 * The maps keep their own (mask) resolution; a mask pixel (mx, my) covers the frame pixels
 * around (mx × frame_width / mask_width, my × frame_height / mask_height). When the frame is
 * scaled downstream (videoscale), frame_width/frame_height and the segment boxes follow it and
 * the maps stay as they are. */
typedef struct
{
  GstMeta meta;

  guint frame_width; /* the frame the maps describe */
  guint frame_height;
  guint mask_width; /* resolution of class_map and instance_map */
  guint mask_height;
  GstVideoFormat format;   /* of class_map: GRAY8 with up to 255 labels, else GRAY16_LE */
  GstBuffer *class_map;    /* label id per mask pixel, rows packed; NONE_8 / NONE_16 for none */
  GstBuffer *instance_map; /* GRAY16_LE segment id per mask pixel, 0 = none; NULL in semantic
                              mode */
  GStrv labels;            /* label_id -> label text */
  GArray *segments;        /* of GstUmgClipSegment */
  GstClockTime source_pts; /* the pts of the frame the maps were computed from (see the
                            * embedding meta); GST_CLOCK_TIME_NONE when unknown */
} GstUmgClipSegmentationMeta;

GType gst_umgclip_segmentation_meta_api_get_type (void);
#define GST_UMGCLIP_SEGMENTATION_META_API_TYPE (gst_umgclip_segmentation_meta_api_get_type ())
const GstMetaInfo *gst_umgclip_segmentation_meta_get_info (void);
#define GST_UMGCLIP_SEGMENTATION_META_INFO (gst_umgclip_segmentation_meta_get_info ())

/* Attaches a segmentation meta referencing class_map (and instance_map, which may be NULL);
 * the format follows from the number of labels. Segments are added with
 * gst_umgclip_segmentation_meta_add_segment(). */
GstUmgClipSegmentationMeta *gst_buffer_add_umgclip_segmentation_meta (
    GstBuffer *buffer, guint frame_width, guint frame_height, guint mask_width, guint mask_height,
    const gchar *const *labels, GstBuffer *class_map, GstBuffer *instance_map);
void gst_umgclip_segmentation_meta_add_segment (GstUmgClipSegmentationMeta *meta,
                                                const GstUmgClipSegment *segment);
#define gst_buffer_get_umgclip_segmentation_meta(buffer)                                           \
  ((GstUmgClipSegmentationMeta *) gst_buffer_get_meta ((buffer),                                   \
                                                       GST_UMGCLIP_SEGMENTATION_META_API_TYPE))

/* Name of the GstCustomMeta that carries the same content for bindings without this header:
 * buf.get_custom_meta ("UmgClipSegmentation").get_structure () in Python. Its structure holds
 * width, height (mask), frame-width, frame-height (gint), labels (GstValueArray of strings),
 * segments (GstValueArray of "segment" structures with id, label-id, label, score, is-thing,
 * x, y, width, height, area), class-map and instance-map (GstBuffer; instance-map only in
 * panoptic mode), and source-pts (guint64, as in the C meta). Scaling the frame scales
 * frame-width/frame-height and the boxes; copies share the map buffers, which are read only. */
#define GST_UMGCLIP_SEGMENTATION_CUSTOM_META_NAME "UmgClipSegmentation"

/* Attaches the content of meta as a GstCustomMeta (see above). */
GstCustomMeta *
gst_buffer_add_umgclip_segmentation_custom_meta (GstBuffer *buffer,
                                                 const GstUmgClipSegmentationMeta *meta);

/* The "umgclip" param structure of a region: label, label_id (int) and confidence of the best
 * tag (DL Streamer's field names and types), tags (GstValueArray of strings) and scores
 * (GstValueArray of doubles) ranked best first, model, and source-pts (guint64: the pts of the
 * frame the tags were computed from; GST_CLOCK_TIME_NONE when unknown). labels, label_ids and
 * scores have n entries in any order. */
GstStructure *gst_umgclip_tags_structure_new (const gchar *model, const gchar *const *labels,
                                              const guint *label_ids, const gdouble *scores,
                                              guint n, GstClockTime source_pts);
/* Writes (replaces) roi's param structure of params' name with params (taken). */
void gst_umgclip_roi_replace_param (GstVideoRegionOfInterestMeta *roi, GstStructure *params);
/* Writes (replaces) the "umgclip" param structure of roi, as gst_umgclip_tags_structure_new. */
void gst_umgclip_roi_set_tags (GstVideoRegionOfInterestMeta *roi, const gchar *model,
                               const gchar *const *labels, const guint *label_ids,
                               const gdouble *scores, guint n, GstClockTime source_pts);

/* The "umgclip-segment" param of a region that stands for a segment of the frame's
 * segmentation meta (umgclipseg's thing ROIs, umgcliptag's segment ROIs): id (guint), the
 * segment's id. get returns FALSE when roi has none. */
void gst_umgclip_roi_set_segment (GstVideoRegionOfInterestMeta *roi, guint segment_id);
gboolean gst_umgclip_roi_get_segment (GstVideoRegionOfInterestMeta *roi, guint *segment_id);

/* The alerts active on a frame (umgclipalert), a GstCustomMeta named "UmgClipAlerts": its
 * structure holds stream (string) and alerts, a GstValueArray of "alert" structures with query
 * (string), score (double: the cosine of the frame with the query), since (guint64: the pts
 * where the alert began) and source-pts (guint64: the frame the score comes from). */
#define GST_UMGCLIP_ALERTS_CUSTOM_META_NAME "UmgClipAlerts"
GstCustomMeta *gst_buffer_add_umgclip_alerts_meta (GstBuffer *buffer, const gchar *stream);
void gst_umgclip_alerts_meta_add (GstCustomMeta *meta, const gchar *query, gdouble score,
                                  GstClockTime since, GstClockTime source_pts);

/* Reads a numeric field of any numeric type as a double (a detector may write label_id as
 * int or uint, confidence as float or double). FALSE when structure is NULL or the field is
 * missing or not a number. */
gboolean gst_umgclip_structure_get_number (const GstStructure *structure, const gchar *field,
                                           gdouble *out);

G_END_DECLS
