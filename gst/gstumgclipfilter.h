/* GstUmgClipFilter: abstract base of the umgclip analysis elements. It holds the shared model,
 * the common properties, labels and their text embeddings, and the schedule: which thread runs
 * a frame's inference (the model's worker, or the streaming thread), when frames wait for it,
 * and which result each frame carries. Subclasses say only what they compute from a frame's
 * features (infer, on the thread that runs the inference) and, optionally, how a result is
 * put on a frame (apply, on the streaming thread). Threads and locks: docs/THREADING.md. */
#pragma once

#include <gst/gst.h>
#include <gst/video/gstvideofilter.h>
#include <gst/video/video.h>

#include "gstumgclipvulkan.h"
#include "umgclip.h"

G_BEGIN_DECLS

#define GST_TYPE_UMGCLIP_FILTER (gst_umgclip_filter_get_type ())
G_DECLARE_DERIVABLE_TYPE (GstUmgClipFilter, gst_umgclip_filter, GST, UMGCLIP_FILTER, GstVideoFilter)

#define GST_TYPE_UMGCLIP_DENSE_MODE (gst_umgclip_dense_mode_get_type ())
GType gst_umgclip_dense_mode_get_type (void);

/* schedule: how a frame waits for its inference. */
typedef enum
{
  GST_UMGCLIP_SCHEDULE_AUTO,    /* latest for live sources, ordered otherwise */
  GST_UMGCLIP_SCHEDULE_SYNC,    /* inference on the streaming thread (debugging) */
  GST_UMGCLIP_SCHEDULE_ORDERED, /* frames wait in order for their own result */
  GST_UMGCLIP_SCHEDULE_LATEST,  /* frames never wait; each carries the newest result */
} GstUmgClipSchedule;

#define GST_TYPE_UMGCLIP_SCHEDULE (gst_umgclip_schedule_get_type ())
GType gst_umgclip_schedule_get_type (void);

/* Caps every umgclip filter accepts, any size, output caps = input caps: these formats in system
 * memory, and in Vulkan buffers or images (read through gstumgclipvulkan.h). */
#define GST_UMGCLIP_FILTER_FORMATS "{ RGB, RGBA, RGBx, BGRx, BGRA, NV12, I420 }"
#define GST_UMGCLIP_FILTER_CAPS                                                                    \
  GST_VIDEO_CAPS_MAKE (GST_UMGCLIP_FILTER_FORMATS)                                                 \
  GST_UMGCLIP_VULKAN_CAPS (GST_UMGCLIP_FILTER_FORMATS)

/* A frame as infer() sees it. Valid during the infer() call. */
typedef struct
{
  GstBuffer *buffer;        /* for its metas (upstream ROIs, segmentation): read only */
  const GstVideoInfo *info; /* format and size */
  UmgClipFrame layout;      /* its pixels as the runtime reads them: host planes, or a frame
                             * copied on the device (layout.device) */
  GstClockTime pts;         /* recorded in results as their source-pts */
} GstUmgClipFrame;

/* Features of one frame. Valid during the infer() call. */
typedef struct
{
  guint dim;
  const gfloat *embedding; /* dim floats, L2-normalised */
  /* Dense map (when the element asked for it), else NULL: grid_height × grid_width × dim, as the
   * runtime returns it: projected, not normalised (pool regions from the raw cells, normalise a
   * cell for its cosine with a text), covering the whole frame. */
  const gfloat *dense;
  guint grid_width, grid_height;
  guint input_width, input_height; /* network input, in pixels */
  UmgClipDenseMode dense_mode;
  /* TRUE when this element ran the backbone, FALSE when the features were taken from an
   * upstream GstUmgClipEmbeddingMeta. */
  gboolean computed;
} GstUmgClipFeatures;

/* What infer() made of one frame: metas on metas (an empty buffer) that the base copies onto
 * that frame and onto the frames that carry the result, and data of the subclass's own for its
 * apply(). */
typedef struct
{
  GstBuffer *metas;
  gpointer data;
  GDestroyNotify free_data;
  guint host_copies; /* frame-sized host copies infer()'s own passes made (crops) */
} GstUmgClipResult;

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
  /* What separates items of the labels property (default ","). */
  const gchar *label_separators;

  /* Whether infer() needs the dense map for this frame (default: FALSE). Streaming thread. */
  gboolean (*wants_dense) (GstUmgClipFilter *filter);

  /* Required. Runs for every frame on which inference runs, with that frame's features, on the
   * thread that runs inference (the model's worker, or the streaming thread with
   * schedule=sync): it must not touch element state that the streaming thread uses, only
   * frame, features, its properties and result. context is the model's context for any further
   * pass (crops). Returning FALSE with error set: the frame has no result; the base posts a
   * warning, and an error once max-errors failures came in a row. */
  gboolean (*infer) (GstUmgClipFilter *filter, UmgClipContext *context,
                     const GstUmgClipFrame *frame, const GstUmgClipFeatures *features,
                     GstUmgClipResult *result, GError **error);

  /* Optional, on the streaming thread: puts result on buffer, a frame that carries it (own: the
   * very frame it was computed from). The base has already copied result->metas onto buffer
   * and numbers the buffer's ROIs afterwards. */
  void (*apply) (GstUmgClipFilter *filter, GstBuffer *buffer, const GstUmgClipResult *result,
                 gboolean own);
};

/* Model id written into metadata: the basename of the model directory. */
const gchar *gst_umgclip_filter_get_model_id (GstUmgClipFilter *filter);
/* Streaming thread: returns once every frame that waits for its result has been pushed (the
 * base does so before any serialized event goes on; a subclass that acts on an event first
 * calls it). */
void gst_umgclip_filter_drain (GstUmgClipFilter *filter);
/* The name of the stream: upstream's URI (a file, a camera), else its stream-id, else the
 * element's name. Any thread. */
gchar *gst_umgclip_filter_dup_stream_name (GstUmgClipFilter *filter);
/* The model's description (sizes, logit scale); valid while started. */
const UmgClipInfo *gst_umgclip_filter_get_info (GstUmgClipFilter *filter);
gdouble gst_umgclip_filter_get_threshold (GstUmgClipFilter *filter);
/* Current labels and their embeddings, encoded (or taken from the model's cache) after each
 * change of labels, labels-file or prompt-template. From infer() only (the worker encodes,
 * never the streaming thread). Returns a new reference; NULL with error set when encoding
 * failed, an empty list (n_labels == 0) when no labels are set. */
GstUmgClipLabels *gst_umgclip_filter_get_labels (GstUmgClipFilter *filter, UmgClipContext *context,
                                                 GError **error);

G_END_DECLS
