/* The shared model (gstumgclipmodel.h): the process-wide cache of loaded models, the worker
 * thread of each, the batching of queued jobs into vision passes, the rebuild of a context
 * after a device fault, and the label-embedding cache. */
#include "gstumgclipmodel.h"

#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_umgclip_model_debug);
#define GST_CAT_DEFAULT gst_umgclip_model_debug

/* Label sets whose embeddings are kept, most recent first. */
#define LABEL_CACHE_SIZE 8

typedef struct
{
  gchar *key; /* labels and templates, joined */
  gfloat *embeddings;
  guint n_labels;
} LabelSet;

struct _GstUmgClipModel
{
  gchar *key; /* in the model cache; refcount under cache_lock */
  gint refcount;

  /* How to load the model again after a fault. */
  gchar *model_dir;
  UmgClipDeviceKind kind;
  gint index;
  gboolean adopted;
  UmgClipVulkanDevice adopt;
  UmgClipInfo info; /* strings interned: valid whatever context is current */
  VkDevice vk_device;

  /* The context. Only a pass runner (under pass_lock) replaces it, as writer; code outside
   * passes that uses it takes the reader lock. */
  GRWLock context_lock;
  UmgClipContext *context;
  GMutex pass_lock; /* one pass runner at a time: the worker or a sync element */

  /* The queue and the jobs' done flags. */
  GMutex lock;
  GCond work_cond; /* a job was queued, or stopping */
  GCond done_cond; /* a job is done, or waiters should look at their cancel flag */
  GQueue queue;    /* GstUmgClipJob * */
  gboolean stopping;
  GThread *worker;

  GMutex labels_lock;
  GQueue label_sets; /* LabelSet *, most recent first */

  /* Under lock. */
  guint64 passes, recoveries;
};

static GMutex cache_lock;
static GHashTable *cache; /* key -> GstUmgClipModel */

static void
label_set_free (gpointer data)
{
  LabelSet *set = data;
  g_free (set->key);
  g_free (set->embeddings);
  g_free (set);
}

static void
copy_info (GstUmgClipModel *model)
{
  const UmgClipInfo *info = umgclip_context_get_info (model->context);
  model->info = *info;
  model->info.layout = g_intern_string (info->layout);
  model->info.dtype = g_intern_string (info->dtype);
  model->info.vision_act = g_intern_string (info->vision_act);
  model->info.text_act = g_intern_string (info->text_act);
  model->info.backend = g_intern_string (info->backend);
  model->vk_device = umgclip_context_get_vk_device (model->context);
}

static UmgClipContext *
load_context (GstUmgClipModel *model, GError **error)
{
  return model->adopted
             ? umgclip_context_new_for_vulkan_device (model->model_dir, &model->adopt, error)
             : umgclip_context_new (model->model_dir, model->kind, model->index, error);
}

/* ---- passes ---- */

static gboolean
same_pass (const GstUmgClipJob *a, const GstUmgClipJob *b)
{
  const UmgClipFrame *x = &a->frame, *y = &b->frame;
  return a->input_width == b->input_width && a->input_height == b->input_height
         && a->request.dense_mode == b->request.dense_mode && x->format == y->format
         && x->width == y->width && x->height == y->height
         && memcmp (x->strides, y->strides, sizeof x->strides) == 0 && x->kr == y->kr
         && x->kb == y->kb && x->full_range == y->full_range
         && (x->device != NULL) == (y->device != NULL);
}

/* Loads the context again after a device fault (pass runner only). */
static gboolean
rebuild (GstUmgClipModel *model, GError **error)
{
  UmgClipContext *fresh;

  GST_WARNING ("model %s: reloading after a failed inference", model->model_dir);
  g_rw_lock_writer_lock (&model->context_lock);
  g_clear_pointer (&model->context, umgclip_context_free);
  fresh = load_context (model, error);
  model->context = fresh;
  if (fresh != NULL)
    copy_info (model);
  g_rw_lock_writer_unlock (&model->context_lock);
  if (fresh != NULL)
    {
      g_mutex_lock (&model->lock);
      model->recoveries++;
      g_mutex_unlock (&model->lock);
    }
  return fresh != NULL;
}

/* Reloads the model at most once per round of jobs; whether the reload worked. */
static gboolean
rebuild_once (GstUmgClipModel *model, gboolean *rebuilt, gboolean *rebuild_ok)
{
  if (!*rebuilt)
    {
      g_autoptr (GError) reload_error = NULL;
      *rebuilt = TRUE;
      *rebuild_ok = rebuild (model, &reload_error);
      if (!*rebuild_ok)
        GST_ERROR ("model %s could not be reloaded: %s", model->model_dir, reload_error->message);
    }
  return *rebuild_ok;
}

/* A failure of one job: kept, and when the device is at fault, the model is reloaded. */
static void
fail_job (GstUmgClipModel *model, GstUmgClipJob *job, const GError *error, gboolean *rebuilt,
          gboolean *rebuild_ok)
{
  if (job->error == NULL)
    job->error = g_error_copy (error);
  if (g_error_matches (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE))
    job->recovered = rebuild_once (model, rebuilt, rebuild_ok);
}

/* One vision pass over frames, counted. Pass runner only. */
static gboolean
run_pass (GstUmgClipModel *model, GArray *frames, GArray *requests, const GstUmgClipJob *first,
          GError **error)
{
  gboolean ok;

  ok = model->context != NULL
       && umgclip_encode_frames (model->context, (const UmgClipFrame *) frames->data, frames->len,
                                 NULL, frames->len, first->input_width, first->input_height,
                                 (UmgClipImageRequest *) requests->data, error);
  g_mutex_lock (&model->lock);
  model->passes += (frames->len + UMGCLIP_MAX_BATCH - 1) / UMGCLIP_MAX_BATCH;
  g_mutex_unlock (&model->lock);
  return ok;
}

/* Runs jobs: one vision pass per group of jobs that can share one, then every job's finish.
 * Pass runner only (pass_lock held). */
static void
process (GstUmgClipModel *model, GstUmgClipJob **jobs, guint n_jobs)
{
  g_autofree gboolean *grouped = g_new0 (gboolean, MAX (n_jobs, 1));
  gboolean rebuilt = FALSE, rebuild_ok = FALSE;
  const gint64 started = g_get_monotonic_time ();

  for (guint i = 0; i < n_jobs; i++)
    jobs[i]->started_us = started;
  if (model->context == NULL)
    {
      g_autoptr (GError) error = NULL;
      if (!rebuild (model, &error))
        {
          for (guint i = 0; i < n_jobs; i++)
            {
              jobs[i]->error = g_error_copy (error);
              jobs[i]->finished_us = g_get_monotonic_time ();
            }
          return;
        }
    }

  for (guint first = 0; first < n_jobs; first++)
    {
      g_autoptr (GPtrArray) group = NULL;
      g_autoptr (GArray) frames = NULL, requests = NULL;
      g_autoptr (GError) error = NULL;
      gboolean ok;

      if (grouped[first] || !jobs[first]->backbone)
        continue;
      group = g_ptr_array_new ();
      frames = g_array_new (FALSE, FALSE, sizeof (UmgClipFrame));
      requests = g_array_new (FALSE, FALSE, sizeof (UmgClipImageRequest));
      for (guint i = first; i < n_jobs; i++)
        if (!grouped[i] && jobs[i]->backbone && same_pass (jobs[first], jobs[i]))
          {
            grouped[i] = TRUE;
            g_ptr_array_add (group, jobs[i]);
            g_array_append_val (frames, jobs[i]->frame);
            g_array_append_val (requests, jobs[i]->request);
          }
      ok = run_pass (model, frames, requests, jobs[first], &error);
      if (!ok && !rebuilt && g_error_matches (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE)
          && rebuild_once (model, &rebuilt, &rebuild_ok))
        {
          /* the device failed and the model is loaded again: these frames run once more on it,
           * so that one fault loses no frame */
          g_autoptr (GError) fault = g_steal_pointer (&error);
          ok = run_pass (model, frames, requests, jobs[first], &error);
          for (guint i = 0; i < group->len; i++)
            {
              GstUmgClipJob *job = group->pdata[i];
              job->recovered = TRUE;
              if (ok)
                job->fault = g_error_copy (fault);
            }
          if (!ok && error == NULL)
            error = g_steal_pointer (&fault);
        }
      for (guint i = 0; i < group->len; i++)
        {
          GstUmgClipJob *job = group->pdata[i];
          job->batch_size = MIN (group->len, UMGCLIP_MAX_BATCH);
          if (ok)
            job->request.host_copies = g_array_index (requests, UmgClipImageRequest, i).host_copies;
          else if (error != NULL)
            fail_job (model, job, error, &rebuilt, &rebuild_ok);
          else
            {
              GError missing = { UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE, (gchar *) "no model loaded" };
              fail_job (model, job, &missing, &rebuilt, &rebuild_ok);
            }
        }
      GST_LOG ("model %s: a pass of %u frames %s", model->model_dir, group->len,
               ok ? "done" : "failed");
    }

  for (guint i = 0; i < n_jobs; i++)
    {
      GstUmgClipJob *job = jobs[i];
      g_autoptr (GError) error = NULL;
      if (job->error == NULL && job->finish != NULL && model->context != NULL
          && !job->finish (job, model->context, &error))
        fail_job (model, job, error, &rebuilt, &rebuild_ok);
      job->finished_us = g_get_monotonic_time ();
    }
}

static gpointer
worker_main (gpointer data)
{
  GstUmgClipModel *model = data;
  g_autoptr (GPtrArray) jobs = g_ptr_array_new ();

  g_mutex_lock (&model->lock);
  for (;;)
    {
      while (g_queue_is_empty (&model->queue) && !model->stopping)
        g_cond_wait (&model->work_cond, &model->lock);
      if (g_queue_is_empty (&model->queue))
        break;
      /* every job queued now goes into this round: those of one layout share a pass */
      g_ptr_array_set_size (jobs, 0);
      while (!g_queue_is_empty (&model->queue))
        g_ptr_array_add (jobs, g_queue_pop_head (&model->queue));
      g_mutex_unlock (&model->lock);

      g_mutex_lock (&model->pass_lock);
      process (model, (GstUmgClipJob **) jobs->pdata, jobs->len);
      g_mutex_unlock (&model->pass_lock);

      g_mutex_lock (&model->lock);
      for (guint i = 0; i < jobs->len; i++)
        ((GstUmgClipJob *) jobs->pdata[i])->done = TRUE;
      g_cond_broadcast (&model->done_cond);
    }
  g_mutex_unlock (&model->lock);
  return NULL;
}

/* ---- the cache of models ---- */

/* Frees a model whose worker has ended (or never started). */
static void
model_free (GstUmgClipModel *model)
{
  g_queue_clear_full (&model->label_sets, label_set_free);
  g_clear_pointer (&model->context, umgclip_context_free);
  g_rw_lock_clear (&model->context_lock);
  g_mutex_clear (&model->pass_lock);
  g_mutex_clear (&model->lock);
  g_cond_clear (&model->work_cond);
  g_cond_clear (&model->done_cond);
  g_mutex_clear (&model->labels_lock);
  g_free (model->key);
  g_free (model->model_dir);
  g_free (model);
}

GstUmgClipModel *
gst_umgclip_model_acquire (const gchar *model_dir, UmgClipDeviceKind kind, gint index,
                           const UmgClipVulkanDevice *adopt, GError **error)
{
  g_autofree gchar *canonical = g_canonicalize_filename (model_dir, NULL);
  g_autofree gchar *key = NULL;
  GstUmgClipModel *model;
  UmgClipDeviceKind resolved_kind;
  gint resolved_index;

  GST_DEBUG_CATEGORY_INIT (gst_umgclip_model_debug, "umgclipmodel", 0,
                           "umgclip shared models and their workers");
  /* auto, vulkan and vulkan:N naming one GPU are one key */
  if (!umgclip_resolve_device (kind, index, &resolved_kind, &resolved_index, error))
    return NULL;
  key = resolved_kind == UMGCLIP_DEVICE_CPU
            ? g_strdup_printf ("cpu:%s", canonical)
            : g_strdup_printf ("vulkan:%d:%s", resolved_index, canonical);

  /* Loading happens under the lock so that two elements starting together load once. */
  g_mutex_lock (&cache_lock);
  if (cache == NULL)
    cache = g_hash_table_new (g_str_hash, g_str_equal);
  model = g_hash_table_lookup (cache, key);
  if (model != NULL)
    {
      model->refcount++;
      g_mutex_unlock (&cache_lock);
      return model;
    }

  model = g_new0 (GstUmgClipModel, 1);
  model->key = g_steal_pointer (&key);
  model->refcount = 1;
  model->model_dir = g_strdup (model_dir);
  model->kind = resolved_kind;
  model->index = resolved_index;
  model->adopted = adopt != NULL && resolved_kind == UMGCLIP_DEVICE_VULKAN;
  if (model->adopted)
    model->adopt = *adopt;
  g_rw_lock_init (&model->context_lock);
  g_mutex_init (&model->pass_lock);
  g_mutex_init (&model->lock);
  g_cond_init (&model->work_cond);
  g_cond_init (&model->done_cond);
  g_mutex_init (&model->labels_lock);
  g_queue_init (&model->queue);
  g_queue_init (&model->label_sets);
  model->context = load_context (model, error);
  if (model->context == NULL)
    {
      g_mutex_unlock (&cache_lock);
      model_free (model);
      return NULL;
    }
  copy_info (model);
  model->worker = g_thread_new ("umgclip-worker", worker_main, model);
  g_hash_table_insert (cache, model->key, model);
  g_mutex_unlock (&cache_lock);
  GST_INFO ("loaded %s on %s", model_dir, model->info.backend);
  return model;
}

void
gst_umgclip_model_release (GstUmgClipModel *model)
{
  if (model == NULL)
    return;
  g_mutex_lock (&cache_lock);
  if (--model->refcount > 0)
    {
      g_mutex_unlock (&cache_lock);
      return;
    }
  g_hash_table_remove (cache, model->key);
  g_mutex_unlock (&cache_lock);

  g_mutex_lock (&model->lock);
  model->stopping = TRUE;
  g_cond_broadcast (&model->work_cond);
  g_mutex_unlock (&model->lock);
  g_thread_join (model->worker);
  model_free (model);
}

const UmgClipInfo *
gst_umgclip_model_get_info (GstUmgClipModel *model)
{
  return &model->info;
}

VkDevice
gst_umgclip_model_get_vk_device (GstUmgClipModel *model)
{
  return model->vk_device;
}

UmgClipDeviceFrame *
gst_umgclip_model_new_device_frame (GstUmgClipModel *model, const UmgClipFrame *layout,
                                    const UmgClipVulkanPlane *planes, guint n_planes,
                                    GError **error)
{
  UmgClipDeviceFrame *frame = NULL;

  g_rw_lock_reader_lock (&model->context_lock);
  if (model->context != NULL)
    frame = umgclip_device_frame_new (model->context, layout, planes, n_planes, error);
  else
    g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE, "the model %s is not loaded",
                 model->model_dir);
  g_rw_lock_reader_unlock (&model->context_lock);
  return frame;
}

gboolean
gst_umgclip_model_check_input_size (GstUmgClipModel *model, gint width, gint height, GError **error)
{
  gboolean fits = FALSE;

  g_rw_lock_reader_lock (&model->context_lock);
  if (model->context != NULL)
    fits = umgclip_context_check_input_size (model->context, width, height, error);
  else
    g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE, "the model %s is not loaded",
                 model->model_dir);
  g_rw_lock_reader_unlock (&model->context_lock);
  return fits;
}

/* ---- jobs ---- */

void
gst_umgclip_model_submit (GstUmgClipModel *model, GstUmgClipJob *job)
{
  job->done = FALSE;
  g_mutex_lock (&model->lock);
  g_queue_push_tail (&model->queue, job);
  g_cond_signal (&model->work_cond);
  g_mutex_unlock (&model->lock);
}

gboolean
gst_umgclip_model_job_done (GstUmgClipModel *model, GstUmgClipJob *job)
{
  gboolean done;
  g_mutex_lock (&model->lock);
  done = job->done;
  g_mutex_unlock (&model->lock);
  return done;
}

gboolean
gst_umgclip_model_wait (GstUmgClipModel *model, GstUmgClipJob *job, const gboolean *cancel)
{
  gboolean done;
  g_mutex_lock (&model->lock);
  while (!job->done && !(cancel != NULL && *cancel))
    g_cond_wait (&model->done_cond, &model->lock);
  done = job->done;
  g_mutex_unlock (&model->lock);
  return done;
}

void
gst_umgclip_model_wake (GstUmgClipModel *model)
{
  g_mutex_lock (&model->lock);
  g_cond_broadcast (&model->done_cond);
  g_mutex_unlock (&model->lock);
}

void
gst_umgclip_model_run_now (GstUmgClipModel *model, GstUmgClipJob *job)
{
  job->done = FALSE;
  g_mutex_lock (&model->pass_lock);
  process (model, &job, 1);
  g_mutex_unlock (&model->pass_lock);
  g_mutex_lock (&model->lock);
  job->done = TRUE;
  g_mutex_unlock (&model->lock);
}

/* ---- labels ---- */

gfloat *
gst_umgclip_model_encode_labels (GstUmgClipModel *model, UmgClipContext *context,
                                 const gchar *const *labels, guint n_labels,
                                 const gchar *const *templates, guint n_templates, GError **error)
{
  const gsize bytes = (gsize) n_labels * model->info.embed_dim * sizeof (gfloat);
  g_autoptr (GString) key = g_string_new (NULL);
  LabelSet *set = NULL;
  gfloat *embeddings;
  gboolean ok;

  for (guint i = 0; i < n_labels; i++)
    g_string_append_printf (key, "%s\x1f", labels[i]);
  g_string_append_c (key, '\x1e');
  for (guint i = 0; i < n_templates; i++)
    g_string_append_printf (key, "%s\x1f", templates[i]);

  g_mutex_lock (&model->labels_lock);
  for (GList *link = model->label_sets.head; link != NULL; link = link->next)
    if (g_strcmp0 (((LabelSet *) link->data)->key, key->str) == 0)
      {
        set = link->data;
        g_queue_unlink (&model->label_sets, link);
        g_queue_push_head_link (&model->label_sets, link);
        break;
      }
  embeddings = set != NULL ? g_memdup2 (set->embeddings, bytes) : NULL;
  g_mutex_unlock (&model->labels_lock);
  if (embeddings != NULL)
    return embeddings;

  embeddings = g_new (gfloat, MAX (n_labels, 1) * (gsize) model->info.embed_dim);
  if (context != NULL)
    ok = umgclip_encode_labels (context, labels, n_labels, templates, n_templates, embeddings,
                                error);
  else
    {
      /* outside a pass: the context must not be swapped while it encodes */
      g_rw_lock_reader_lock (&model->context_lock);
      ok = model->context != NULL
           && umgclip_encode_labels (model->context, labels, n_labels, templates, n_templates,
                                     embeddings, error);
      if (model->context == NULL)
        g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE, "the model %s is not loaded",
                     model->model_dir);
      g_rw_lock_reader_unlock (&model->context_lock);
    }
  if (!ok)
    {
      g_free (embeddings);
      return NULL;
    }

  set = g_new0 (LabelSet, 1);
  set->key = g_string_free (g_steal_pointer (&key), FALSE);
  set->embeddings = g_memdup2 (embeddings, bytes);
  set->n_labels = n_labels;
  g_mutex_lock (&model->labels_lock);
  g_queue_push_head (&model->label_sets, set);
  while (g_queue_get_length (&model->label_sets) > LABEL_CACHE_SIZE)
    label_set_free (g_queue_pop_tail (&model->label_sets));
  g_mutex_unlock (&model->labels_lock);
  return embeddings;
}

void
gst_umgclip_model_get_stats (GstUmgClipModel *model, GstUmgClipModelStats *stats)
{
  g_mutex_lock (&model->lock);
  stats->passes = model->passes;
  stats->recoveries = model->recoveries;
  g_mutex_unlock (&model->lock);
  g_mutex_lock (&cache_lock);
  stats->elements = model->refcount;
  g_mutex_unlock (&cache_lock);
}
