/* The shared model of the umgclip elements: one loaded model per (model directory, physical
 * device) in the process, however the elements spell the device, with the worker thread that
 * batches the pending frames of every element on it into one inference, and the cache of label
 * embeddings. Threads and locks: docs/THREADING.md. */
#pragma once

#include <gst/gst.h>

#include "umgclip-vulkan.h"
#include "umgclip.h"

G_BEGIN_DECLS

typedef struct _GstUmgClipModel GstUmgClipModel;
typedef struct _GstUmgClipJob GstUmgClipJob;

/* Runs on the thread that runs the job, after its vision pass (or alone, without one). */
typedef gboolean (*GstUmgClipJobFinish) (GstUmgClipJob *job, UmgClipContext *context,
                                         GError **error);

/* One frame's work. The submitter fills the first part and keeps the pixels valid (and the job
 * alive) until the job is done; the worker fills the rest. */
struct _GstUmgClipJob
{
  /* The vision pass, when backbone is set: frame (host planes or a device frame) resized to
   * input_width × input_height, with request's outputs. Jobs of one frame layout, size and
   * dense mode share a pass. */
  gboolean backbone;
  UmgClipFrame frame;
  gint input_width, input_height;
  UmgClipImageRequest request;
  /* Then, unless the pass failed: */
  GstUmgClipJobFinish finish;

  /* Set by whoever runs the job. */
  GError *error;                  /* the pass or finish failed */
  gboolean recovered;             /* the pass failed on the device and the model was loaded again */
  GError *fault;                  /* with recovered and no error: the fault that the rerun on the
                                   * reloaded model got past */
  guint batch_size;               /* images in the pass that held this frame (0: no pass) */
  gint64 started_us, finished_us; /* g_get_monotonic_time () */
  gboolean done;                  /* under the model's lock; see gst_umgclip_model_wait */
};

/* The shared model for model_dir on the device that (kind, index) names, loaded on first use;
 * with adopt set (a GStreamer Vulkan device), a model loaded for it runs on that very VkDevice.
 * A second element naming the same directory on the same physical device gets the same model,
 * whichever way it spells the device. NULL with error when loading fails. */
GstUmgClipModel *gst_umgclip_model_acquire (const gchar *model_dir, UmgClipDeviceKind kind,
                                            gint index, const UmgClipVulkanDevice *adopt,
                                            GError **error);
/* The last release stops the worker (finishing the jobs queued) and frees the model. */
void gst_umgclip_model_release (GstUmgClipModel *model);

/* What every context of the model reports (the context itself may be rebuilt after a fault). */
const UmgClipInfo *gst_umgclip_model_get_info (GstUmgClipModel *model);
/* The Vulkan device the model's context runs on, VK_NULL_HANDLE on the CPU. */
VkDevice gst_umgclip_model_get_vk_device (GstUmgClipModel *model);

/* umgclip_context_check_input_size on the model's context: whether a width x height pass fits
 * the device memory with the weights. */
gboolean gst_umgclip_model_check_input_size (GstUmgClipModel *model, gint width, gint height,
                                             GError **error);
/* Copies a frame in device memory into the model's context (umgclip_device_frame_new), safe
 * against the worker rebuilding the context. */
UmgClipDeviceFrame *gst_umgclip_model_new_device_frame (GstUmgClipModel *model,
                                                        const UmgClipFrame *layout,
                                                        const UmgClipVulkanPlane *planes,
                                                        guint n_planes, GError **error);

/* Hands job to the worker; returns at once. */
void gst_umgclip_model_submit (GstUmgClipModel *model, GstUmgClipJob *job);
/* Whether job is done (never blocks). */
gboolean gst_umgclip_model_job_done (GstUmgClipModel *model, GstUmgClipJob *job);
/* Blocks until job is done, or until cancelled (then FALSE): the caller's *cancel is read under
 * the model's lock, and gst_umgclip_model_wake () wakes every waiter to look at it. */
gboolean gst_umgclip_model_wait (GstUmgClipModel *model, GstUmgClipJob *job,
                                 const gboolean *cancel);
void gst_umgclip_model_wake (GstUmgClipModel *model);
/* Runs job on the calling thread, in turn with the worker's passes (schedule=sync). */
void gst_umgclip_model_run_now (GstUmgClipModel *model, GstUmgClipJob *job);

/* Label embeddings, L2-normalised: labels × templates as umgclip_encode_labels computes them,
 * from the model's cache (a few recent label sets) or encoded now, on the calling thread. Call
 * it from a job's finish, or before streaming starts. Returns n_labels × embed_dim floats to
 * g_free, or NULL with error. */
gfloat *gst_umgclip_model_encode_labels (GstUmgClipModel *model, UmgClipContext *context,
                                         const gchar *const *labels, guint n_labels,
                                         const gchar *const *templates, guint n_templates,
                                         GError **error);

/* Counters of the model (for tests and the stats of its elements). */
typedef struct
{
  guint64 passes;     /* vision passes the worker ran */
  guint64 recoveries; /* contexts rebuilt after a failed pass */
  guint elements;     /* elements holding the model */
} GstUmgClipModelStats;
void gst_umgclip_model_get_stats (GstUmgClipModel *model, GstUmgClipModelStats *stats);

G_END_DECLS
