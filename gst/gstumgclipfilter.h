/* GstUmgClipFilter: abstract base of the umgclip analysis elements. It owns the model (shared
 * per process), the common properties, labels and their text embeddings, frame conversion,
 * inference-interval / QoS skipping, element messages and latency. */
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>
#include <gst/video/gstvideofilter.h>

#include "gstumgclipvulkan.h"
#include "umgclip.h"

G_BEGIN_DECLS

#define GST_TYPE_UMGCLIP_FILTER (gst_umgclip_filter_get_type ())
G_DECLARE_DERIVABLE_TYPE (GstUmgClipFilter, gst_umgclip_filter, GST, UMGCLIP_FILTER, GstVideoFilter)

#define GST_TYPE_UMGCLIP_DENSE_MODE (gst_umgclip_dense_mode_get_type ())
GType gst_umgclip_dense_mode_get_type (void);

/* Caps every umgclip filter accepts, any size, output caps = input caps: these formats in system
 * memory, and in Vulkan buffers or images (read through gstumgclipvulkan.h). */
#define GST_UMGCLIP_FILTER_FORMATS "{ RGB, RGBA, RGBx, BGRx, BGRA, NV12, I420 }"
#define GST_UMGCLIP_FILTER_CAPS                                                                    \
  GST_VIDEO_CAPS_MAKE (GST_UMGCLIP_FILTER_FORMATS)                                                 \
  GST_UMGCLIP_VULKAN_CAPS (GST_UMGCLIP_FILTER_FORMATS)

/* Features of one frame. Owned by the base class, valid during the infer() call. */
typedef struct
{
  guint dim;
  const gfloat *embedding; /* dim floats, L2-normalised */
  /* Dense map (when the element asked for it), else NULL: grid_height × grid_width × dim,
   * each cell L2-normalised, covering the whole frame. */
  const gfloat *dense;
  guint grid_width, grid_height;
  guint input_width, input_height; /* network input, in pixels */
  UmgClipDenseMode dense_mode;
  /* TRUE when this element ran the backbone, FALSE when the features were taken from an
   * upstream GstUmgClipEmbeddingMeta. */
  gboolean computed;
} GstUmgClipFeatures;

/* The current label list with its normalised text embeddings. An immutable snapshot:
 * it stays valid while labels change, until unreffed. */
typedef struct
{
  gint refcount;
  GStrv labels;
  guint n_labels;
  guint dim;
  gfloat *embeddings; /* n_labels × dim, L2-normalised */
} GstUmgClipLabels;

GstUmgClipLabels *gst_umgclip_labels_ref (GstUmgClipLabels *labels);
void gst_umgclip_labels_unref (GstUmgClipLabels *labels);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GstUmgClipLabels, gst_umgclip_labels_unref)

struct _GstUmgClipFilterClass
{
  GstVideoFilterClass parent_class;

  /* Set in class_init. needs_labels: starting without any label is an error. */
  gboolean needs_labels;

  /* Whether infer() needs the dense map for this frame (default: FALSE). */
  gboolean (*wants_dense) (GstUmgClipFilter *filter);

  /* Required. Runs on every frame on which inference runs, with that frame's features.
   * Attach results to result, an empty buffer whose metas the base copies onto this frame and
   * onto every frame skipped until the next inference (inference-interval, QoS); results that
   * must not be carried over may go on frame->buffer directly. Returning FALSE with error set
   * posts it as an element error and stops the stream. */
  gboolean (*infer) (GstUmgClipFilter *filter, GstVideoFrame *frame,
                     const GstUmgClipFeatures *features, GstBuffer *result, GError **error);
};

/* For subclasses, from infer() (or while started). */
UmgClipContext *gst_umgclip_filter_get_context (GstUmgClipFilter *filter);
/* Model id written into metadata: the basename of the model directory. */
const gchar *gst_umgclip_filter_get_model_id (GstUmgClipFilter *filter);
gdouble gst_umgclip_filter_get_threshold (GstUmgClipFilter *filter);
/* Current labels and their embeddings, computed once after each change of labels,
 * labels-file or prompt-template. Returns a new reference; NULL with error set when encoding
 * failed, an empty list (n_labels == 0) when no labels are set. */
GstUmgClipLabels *gst_umgclip_filter_get_labels (GstUmgClipFilter *filter, GError **error);

/* Features of frame: taken from an upstream GstUmgClipEmbeddingMeta when its model id, dense
 * mode and input size match ours (and it has the dense map when want_dense), else computed by
 * one pass of the backbone. The base calls this before infer(); it is public for elements that
 * need features outside that path. Pointers in features stay valid until the next call. */
gboolean gst_umgclip_filter_compute_features (GstUmgClipFilter *filter, GstVideoFrame *frame,
                                              gboolean want_dense, GstUmgClipFeatures *features,
                                              GError **error);

/* Frame -> network input on the host: the whole frame (no crop, aspect not kept, so dense maps
 * cover every frame pixel) resized bilinearly to width × height, normalised with the model's
 * pixel statistics; out: [3, height, width]. The elements' own passes do this on the backend
 * (umgclip_encode_frame); this is for work outside them, such as re-encoding crops. */
gboolean gst_umgclip_frame_to_tensor (UmgClipContext *context, const GstVideoFrame *frame,
                                      gint width, gint height, gfloat *out, GError **error);

G_END_DECLS
