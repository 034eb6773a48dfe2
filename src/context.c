/* The public API: load a model onto a backend, plan each graph on first use and keep it,
 * run passes, and score images against labels. */
#include "context.h"

#include "frame.h"
#include "segment.h"
#include "text.h"
#include "umgclip-vulkan.h"
#include "vit.h"
#include "vk_context.h"
#include "vk_frame.h"

#include <math.h>
#include <string.h>

/* Text passes run this many sequences at once at most. */
#define TEXT_BATCH 16

G_DEFINE_QUARK (umgclip - error - quark, umgclip_error)

typedef enum
{
  GRAPH_TEXT,
  GRAPH_VISION,
} GraphKind;

typedef struct
{
  gint n_seq, length;
} TextSpec;

/* What a planned graph was built for: compared as bytes, so every field is 4 bytes wide and
 * keys are zeroed before they are filled (no padding can differ). */
typedef struct
{
  GraphKind kind;
  TextSpec text;
  UmgVisionSpec vision;
} PlanKey;

typedef struct
{
  PlanKey key;
  UmgGraph *graph;
  UmgPlan *plan;
  UmgBackend *backend;
  GList link; /* in ctx->recent */
} PlannedGraph;

static void
planned_graph_free (gpointer data)
{
  PlannedGraph *planned = data;
  if (planned->plan != NULL)
    planned->backend->klass->free_plan (planned->backend, planned->plan);
  umg_graph_free (planned->graph);
  g_free (planned);
}

static guint
plan_key_hash (gconstpointer key)
{
  const guint8 *bytes = key;
  guint32 hash = 2166136261u; /* FNV-1a */
  for (gsize i = 0; i < sizeof (PlanKey); i++)
    hash = (hash ^ bytes[i]) * 16777619u;
  return hash;
}

static gboolean
plan_key_equal (gconstpointer a, gconstpointer b)
{
  return memcmp (a, b, sizeof (PlanKey)) == 0;
}

/* ---- fault injection (UMGCLIP_FAIL_RUNS) ---- */

typedef struct
{
  GArray *runs;       /* guint64: runs that fail */
  guint64 fail_after; /* 0, or K of "K-": that run and every later one fails */
} FailPlan;

static const FailPlan *
fail_plan (void)
{
  static FailPlan plan;
  static gsize parsed = 0;

  if (g_once_init_enter (&parsed))
    {
      g_auto (GStrv) items = umgclip_split_list (g_getenv ("UMGCLIP_FAIL_RUNS"), ",");
      plan.runs = g_array_new (FALSE, FALSE, sizeof (guint64));
      for (guint i = 0; items[i] != NULL; i++)
        {
          gsize length = strlen (items[i]);
          gboolean open_ended = length > 1 && items[i][length - 1] == '-';
          guint64 run;
          if (open_ended)
            items[i][length - 1] = '\0';
          if (!g_ascii_string_to_unsigned (items[i], 10, 1, G_MAXUINT64, &run, NULL))
            {
              g_warning ("UMGCLIP_FAIL_RUNS: '%s' is not a run number (K or K-); ignored",
                         items[i]);
              continue;
            }
          if (open_ended)
            plan.fail_after = plan.fail_after == 0 ? run : MIN (plan.fail_after, run);
          else
            g_array_append_val (plan.runs, run);
        }
      g_once_init_leave (&parsed, 1);
    }
  return &plan;
}

static gboolean
injected_failure (GError **error)
{
  static gint runs = 0; /* every backend run of the process */
  const FailPlan *plan = fail_plan ();
  guint64 run;

  if (plan->runs->len == 0 && plan->fail_after == 0)
    return FALSE;
  run = (guint64) (guint) g_atomic_int_add (&runs, 1) + 1;
  for (guint i = 0; i < plan->runs->len; i++)
    if (g_array_index (plan->runs, guint64, i) == run)
      goto fail;
  if (plan->fail_after != 0 && run >= plan->fail_after)
    goto fail;
  return FALSE;
fail:
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
               "backend run %" G_GUINT64_FORMAT " failed as UMGCLIP_FAIL_RUNS asks (an injected "
               "device loss)",
               run);
  return TRUE;
}

gboolean
umgclip_parse_device (const gchar *text, UmgClipDeviceKind *kind, gint *index, GError **error)
{
  *index = -1;
  if (text == NULL || *text == '\0' || g_strcmp0 (text, "auto") == 0)
    *kind = UMGCLIP_DEVICE_AUTO;
  else if (g_strcmp0 (text, "cpu") == 0)
    *kind = UMGCLIP_DEVICE_CPU;
  else if (g_strcmp0 (text, "vulkan") == 0)
    *kind = UMGCLIP_DEVICE_VULKAN;
  else if (g_str_has_prefix (text, "vulkan:"))
    {
      guint64 value;
      if (!g_ascii_string_to_unsigned (text + 7, 10, 0, 255, &value, NULL))
        goto bad;
      *kind = UMGCLIP_DEVICE_VULKAN;
      *index = value;
    }
  else
    goto bad;
  return TRUE;

bad:
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
               "unknown device '%s' (auto, cpu, vulkan or vulkan:N)", text);
  return FALSE;
}

gboolean
umgclip_resolve_device (UmgClipDeviceKind kind, gint index, UmgClipDeviceKind *out_kind,
                        gint *out_index, GError **error)
{
  if (kind == UMGCLIP_DEVICE_AUTO)
    kind = umg_backend_vulkan_has_gpu () ? UMGCLIP_DEVICE_VULKAN : UMGCLIP_DEVICE_CPU;
  *out_kind = kind;
  *out_index = -1;
  if (kind == UMGCLIP_DEVICE_CPU)
    return TRUE;
  return umg_vk_choose_device_index (index, TRUE, out_index, error);
}

static const gchar *const dense_mode_names[] = { "naclip", "clearclip", "sclip", "maskclip" };

const gchar *
umgclip_dense_mode_name (UmgClipDenseMode mode)
{
  return mode < G_N_ELEMENTS (dense_mode_names) ? dense_mode_names[mode] : "unknown";
}

gboolean
umgclip_parse_dense_mode (const gchar *text, UmgClipDenseMode *mode, GError **error)
{
  for (guint i = 0; i < G_N_ELEMENTS (dense_mode_names); i++)
    if (g_strcmp0 (text, dense_mode_names[i]) == 0)
      {
        *mode = i;
        return TRUE;
      }
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
               "unknown dense mode '%s' (naclip, clearclip, sclip or maskclip)",
               text ? text : "(null)");
  return FALSE;
}

static const gchar *
activation_name (UmgActivation act)
{
  return act == UMG_ACT_GELU ? "gelu" : "quick_gelu";
}

const gchar *
umgclip_default_model (void)
{
  const gchar *from_env = g_getenv ("UMGCLIP_MODEL");
  if (from_env != NULL && *from_env != '\0')
    return from_env;
  if (g_file_test (UMGCLIP_INSTALLED_MODEL, G_FILE_TEST_IS_DIR))
    return UMGCLIP_INSTALLED_MODEL;
  return UMGCLIP_SOURCE_MODEL;
}

/* ---- memory limits ---- */

#define MIB(bytes) ((bytes) / 1048576.0)

/* UMGCLIP_MEMORY_LIMIT: bytes, or a number with a K, M, G or T suffix (powers of 1024). */
static gboolean
parse_memory_limit (const gchar *text, guint64 *out, GError **error)
{
  gchar *end;
  guint64 value = g_ascii_strtoull (text, &end, 10);
  guint shift = 0;

  switch (g_ascii_toupper (*end))
    {
    case 'K':
      shift = 10;
      break;
    case 'M':
      shift = 20;
      break;
    case 'G':
      shift = 30;
      break;
    case 'T':
      shift = 40;
      break;
    default:
      break;
    }
  if (shift != 0)
    end++;
  if (end == text || *end != '\0' || value == 0 || value > (G_MAXUINT64 >> shift))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "UMGCLIP_MEMORY_LIMIT '%s' is not a size (bytes, or a number with K, M, G or "
                   "T)",
                   text);
      return FALSE;
    }
  *out = value << shift;
  return TRUE;
}

/* Fails, naming the model, the pass and the limit, when the weights and activations bytes of
 * activations do not fit the device: a clear message before the backend allocates, instead of
 * an allocation failure inside it. what: the pass, for the message. */
static gboolean
check_memory (UmgClipContext *ctx, guint64 activations, const gchar *what, GError **error)
{
  guint64 total;

  if (ctx->memory_limit == 0)
    return TRUE;
  if (g_uint64_checked_add (&total, ctx->weights_bytes, activations) && total <= ctx->memory_limit)
    return TRUE;
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
               "%s: %s needs %.1f MiB (%.1f MiB of weights and %.1f MiB of activations), more "
               "than the %.1f MiB of %s",
               ctx->model->dir, what, MIB ((gdouble) ctx->weights_bytes + activations),
               MIB ((gdouble) ctx->weights_bytes), MIB ((gdouble) activations),
               MIB ((gdouble) ctx->memory_limit), ctx->limit_source);
  return FALSE;
}

static gboolean
set_memory_limit (UmgClipContext *ctx, GError **error)
{
  const gchar *forced = g_getenv ("UMGCLIP_MEMORY_LIMIT");

  for (guint i = 0; i < ctx->model->weights->len; i++)
    {
      const UmgTensor *weight = &g_array_index (ctx->model->weights, UmgTensor, i);
      ctx->weights_bytes += (guint64) weight->n_elements * umg_dtype_size (weight->dtype);
    }
  if (forced != NULL && *forced != '\0')
    {
      ctx->limit_source = "UMGCLIP_MEMORY_LIMIT";
      return parse_memory_limit (forced, &ctx->memory_limit, error);
    }
  ctx->memory_limit = ctx->backend->memory_bytes;
  ctx->limit_source = ctx->backend->description;
  return TRUE;
}

/* Loads the model onto backend (taken). */
static UmgClipContext *
context_new (const gchar *model_dir, UmgBackend *backend, GError **error)
{
  g_autoptr (UmgClipContext) ctx = g_new0 (UmgClipContext, 1);
  UmgModel *model;

  g_mutex_init (&ctx->lock);
  ctx->graphs = g_hash_table_new_full (plan_key_hash, plan_key_equal, NULL, planned_graph_free);
  g_queue_init (&ctx->recent);
  ctx->backend = backend;
  if (backend == NULL)
    return NULL;
  ctx->model = model = umg_model_load (model_dir, error);
  if (model == NULL)
    return NULL;
  if (!set_memory_limit (ctx, error) || !check_memory (ctx, 0, "the model", error))
    return NULL;
  if (!ctx->backend->klass->set_weights (ctx->backend, (const UmgTensor *) model->weights->data,
                                         model->weights->len, error))
    return NULL;

  ctx->info = (UmgClipInfo){
    .layout = model->layout,
    .dtype = model->dtype,
    .embed_dim = model->embed_dim,
    .image_size = model->vision.image_size,
    .patch_size = model->vision.patch_size,
    .vision_width = model->vision.tower.width,
    .vision_layers = model->vision.tower.layers,
    .vision_heads = model->vision.tower.heads,
    .text_width = model->text.tower.width,
    .text_layers = model->text.tower.layers,
    .text_heads = model->text.tower.heads,
    .context_length = model->text.context_length,
    .vocab_size = model->text.vocab_size,
    .vision_act = activation_name (model->vision.tower.act),
    .text_act = activation_name (model->text.tower.act),
    .logit_scale = model->logit_scale,
    .backend = ctx->backend->description,
  };
  return g_steal_pointer (&ctx);
}

UmgClipContext *
umgclip_context_new (const gchar *model_dir, UmgClipDeviceKind device, gint device_index,
                     GError **error)
{
  if (device == UMGCLIP_DEVICE_AUTO)
    device = umg_backend_vulkan_has_gpu () ? UMGCLIP_DEVICE_VULKAN : UMGCLIP_DEVICE_CPU;
  return context_new (model_dir,
                      device == UMGCLIP_DEVICE_CPU
                          ? umg_backend_cpu_new (error)
                          : umg_backend_vulkan_new (device_index, TRUE, error),
                      error);
}

UmgClipContext *
umgclip_context_new_for_vulkan_device (const gchar *model_dir, const UmgClipVulkanDevice *device,
                                       GError **error)
{
  return context_new (model_dir, umg_backend_vulkan_new_adopted (device, error), error);
}

VkDevice
umgclip_context_get_vk_device (UmgClipContext *ctx)
{
  UmgVkContext *vk = umg_backend_vulkan_get_context (ctx->backend);
  return vk != NULL ? vk->device : VK_NULL_HANDLE;
}

guint
umgclip_vulkan_devices_created (void)
{
  return umg_vk_devices_created ();
}

guint
umgclip_context_get_plan_count (UmgClipContext *ctx, guint *plans_made)
{
  guint count;
  g_mutex_lock (&ctx->lock);
  count = g_hash_table_size (ctx->graphs);
  if (plans_made != NULL)
    *plans_made = ctx->plans_made;
  g_mutex_unlock (&ctx->lock);
  return count;
}

void
umgclip_context_free (UmgClipContext *ctx)
{
  if (ctx == NULL)
    return;
  /* plans belong to the backend: free them first (their queue links live inside them) */
  g_queue_init (&ctx->recent);
  g_clear_pointer (&ctx->graphs, g_hash_table_unref);
  g_clear_pointer (&ctx->backend, umg_backend_free);
  g_clear_pointer (&ctx->tokenizer, umg_tokenizer_free);
  g_clear_pointer (&ctx->model, umg_model_free);
  g_mutex_clear (&ctx->lock);
  g_free (ctx);
}

const UmgClipInfo *
umgclip_context_get_info (UmgClipContext *ctx)
{
  return &ctx->info;
}

/* The pass a key plans, for messages. */
static gchar *
describe_pass (const PlanKey *key)
{
  if (key->kind == GRAPH_TEXT)
    return g_strdup_printf ("a text pass of %d x %d tokens", key->text.n_seq, key->text.length);
  return g_strdup_printf ("a %dx%d image pass of %d", key->vision.width, key->vision.height,
                          key->vision.batch);
}

/* Before the graph is built: a vision pass holds at least its tokens' activations (and the
 * resized position embedding, as large), so a huge input-size fails before either is made. */
static gboolean
check_vision_size (UmgClipContext *ctx, const PlanKey *key, GError **error)
{
  const guint64 p = ctx->model->vision.patch_size;
  const guint64 tokens = 1 + (key->vision.width / p) * (key->vision.height / p);
  g_autofree gchar *what = describe_pass (key);
  guint64 bytes;

  if (key->kind != GRAPH_VISION)
    return TRUE;
  if (!g_uint64_checked_mul (&bytes, tokens, (guint64) ctx->model->vision.tower.width * 4)
      || !g_uint64_checked_mul (&bytes, bytes, (guint64) key->vision.batch + 1))
    bytes = G_MAXUINT64;
  return check_memory (ctx, bytes, what, error);
}

static gboolean
check_graph_memory (UmgClipContext *ctx, const PlanKey *key, const UmgGraph *graph, GError **error)
{
  g_autofree gchar *what = describe_pass (key);
  guint64 bytes;

  if (!g_uint64_checked_mul (&bytes, graph->arena_elements, 4))
    bytes = G_MAXUINT64;
  return check_memory (ctx, bytes, what, error);
}

/* The planned graph for key, built by build() on first use and kept in the LRU cache. Call with
 * the lock held. */
static PlannedGraph *
planned_graph (UmgClipContext *ctx, const PlanKey *key,
               UmgGraph *(*build) (UmgClipContext *ctx, const PlanKey *key, GError **error),
               GError **error)
{
  PlannedGraph *planned = g_hash_table_lookup (ctx->graphs, key);
  UmgGraph *graph;

  if (planned != NULL)
    {
      g_queue_unlink (&ctx->recent, &planned->link);
      g_queue_push_head_link (&ctx->recent, &planned->link);
      return planned;
    }
  graph = build (ctx, key, error);
  if (graph == NULL)
    return NULL;
  if (!check_graph_memory (ctx, key, graph, error))
    {
      umg_graph_free (graph);
      return NULL;
    }
  planned = g_new0 (PlannedGraph, 1);
  planned->key = *key;
  planned->graph = graph;
  planned->backend = ctx->backend;
  planned->link.data = planned;
  planned->plan = ctx->backend->klass->plan (ctx->backend, graph, error);
  if (planned->plan == NULL)
    {
      planned_graph_free (planned);
      return NULL;
    }
  ctx->plans_made++;
  while (g_hash_table_size (ctx->graphs) >= UMGCLIP_PLAN_CACHE_SIZE)
    {
      GList *oldest = g_queue_pop_tail_link (&ctx->recent);
      g_hash_table_remove (ctx->graphs, &((PlannedGraph *) oldest->data)->key);
    }
  g_hash_table_insert (ctx->graphs, &planned->key, planned);
  g_queue_push_head_link (&ctx->recent, &planned->link);
  return planned;
}

static gboolean
run_planned (UmgClipContext *ctx, PlannedGraph *planned, const void *const *inputs,
             const UmgDeviceInput *device_inputs, void *const *outputs, GError **error)
{
  if (injected_failure (error))
    return FALSE;
  return ctx->backend->klass->run (ctx->backend, planned->plan, inputs, device_inputs, outputs,
                                   error);
}

/* ---- text ---- */

static gboolean
ensure_tokenizer (UmgClipContext *ctx, GError **error)
{
  if (ctx->tokenizer == NULL)
    {
      ctx->tokenizer = umg_tokenizer_new_from_dir (ctx->model->dir, error);
      if (ctx->tokenizer == NULL)
        return FALSE;
    }
  return TRUE;
}

gint
umgclip_tokenize (UmgClipContext *ctx, const gchar *text, gint32 *tokens, GError **error)
{
  gint count;
  g_mutex_lock (&ctx->lock);
  count = ensure_tokenizer (ctx, error)
              ? umg_tokenizer_encode (ctx->tokenizer, text, tokens, ctx->model->text.context_length)
              : -1;
  g_mutex_unlock (&ctx->lock);
  return count;
}

static UmgGraph *
build_text_graph (UmgClipContext *ctx, const PlanKey *key, GError **error)
{
  return umg_text_graph_new (ctx->model, key->text.n_seq, key->text.length);
}

/* Token rows of a pass: the longest text of the batch, rounded up to a multiple of 8 so that
 * label lists of similar lengths share a few planned graphs. */
static gint
pass_length (const gint *counts, gint n_seq, gint context_length)
{
  gint longest = 2;
  for (gint s = 0; s < n_seq; s++)
    longest = MAX (longest, counts[s]);
  return MIN ((longest + 7) / 8 * 8, context_length);
}

static gboolean
encode_text_batch (UmgClipContext *ctx, const gchar *const *texts, gint n_seq, gfloat *out,
                   GError **error)
{
  const gint context_length = ctx->model->text.context_length;
  const gint32 end_id = umg_tokenizer_end_id (ctx->tokenizer);
  g_autofree gint32 *tokenized = g_new0 (gint32, (gsize) n_seq * context_length);
  g_autofree gint *counts = g_new0 (gint, n_seq);
  g_autofree gint32 *ids = NULL;
  g_autofree gint32 *ends = g_new0 (gint32, n_seq);
  PlanKey key;
  TextSpec spec = { n_seq, 0 };
  PlannedGraph *planned;

  for (gint s = 0; s < n_seq; s++)
    {
      gint32 *seq = tokenized + (gsize) s * context_length;
      counts[s] = umg_tokenizer_encode (ctx->tokenizer, texts[s], seq, context_length);
      for (gint i = 0; i < counts[s]; i++)
        if (seq[i] < 0 || seq[i] >= ctx->model->text.vocab_size)
          {
            g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_MODEL,
                         "%s: token id %d of \"%s\" is outside the model's vocabulary of %d "
                         "(tokenizer files do not match the checkpoint)",
                         ctx->model->dir, seq[i], texts[s], ctx->model->text.vocab_size);
            return FALSE;
          }
    }
  spec.length = pass_length (counts, n_seq, context_length);
  ids = g_new0 (gint32, (gsize) n_seq * spec.length);
  for (gint s = 0; s < n_seq; s++)
    {
      const gint32 *seq = tokenized + (gsize) s * context_length;
      memcpy (ids + (gsize) s * spec.length, seq, spec.length * sizeof (gint32));
      ends[s] = s * spec.length + counts[s] - 1;
      for (gint i = 0; i < counts[s]; i++)
        if (seq[i] == end_id)
          {
            ends[s] = s * spec.length + i;
            break;
          }
    }
  memset (&key, 0, sizeof key);
  key.kind = GRAPH_TEXT;
  key.text = spec;
  planned = planned_graph (ctx, &key, build_text_graph, error);
  if (planned == NULL)
    return FALSE;
  return run_planned (ctx, planned, (const void *[]){ ids, ends }, NULL, (void *[]){ out }, error);
}

gboolean
umgclip_encode_text (UmgClipContext *ctx, const gchar *const *texts, guint n_texts, gfloat *out,
                     GError **error)
{
  gboolean ok = TRUE;
  g_mutex_lock (&ctx->lock);
  ok = ensure_tokenizer (ctx, error);
  for (guint first = 0; ok && first < n_texts; first += TEXT_BATCH)
    ok = encode_text_batch (ctx, texts + first, MIN (TEXT_BATCH, n_texts - first),
                            out + (gsize) first * ctx->model->embed_dim, error);
  g_mutex_unlock (&ctx->lock);
  return ok;
}

/* ---- image ---- */

static UmgGraph *
build_vision_graph (UmgClipContext *ctx, const PlanKey *key, GError **error)
{
  if (!check_vision_size (ctx, key, error))
    return NULL;
  return umg_vision_graph_new (ctx->model, &key->vision, error);
}

gboolean
umgclip_context_check_input_size (UmgClipContext *ctx, gint width, gint height, GError **error)
{
  PlanKey key;
  g_autoptr (UmgGraph) graph = NULL;

  memset (&key, 0, sizeof key);
  key.kind = GRAPH_VISION;
  key.vision.width = width;
  key.vision.height = height;
  key.vision.batch = 1;
  key.vision.frame_format = -1;
  graph = build_vision_graph (ctx, &key, error);
  return graph != NULL && check_graph_memory (ctx, &key, graph, error);
}

/* Checks the requests of one pass against each other and fills what they share into spec. */
static gboolean
check_requests (UmgClipContext *ctx, const UmgClipImageRequest *requests, guint n_images,
                UmgVisionSpec *spec, GError **error)
{
  guint most_boxes = 0;

  if (spec->width <= 0 || spec->height <= 0 || spec->width > 8192 || spec->height > 8192)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "image size %dx%d is out of range (1..8192)", spec->width, spec->height);
      return FALSE;
    }
  if ((guint) requests[0].dense_mode > UMGCLIP_DENSE_MASKCLIP)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "unknown dense mode %d",
                   requests[0].dense_mode);
      return FALSE;
    }
  for (guint i = 0; i < n_images; i++)
    {
      const UmgClipImageRequest *request = &requests[i];
      if (request->dense_mode != requests[0].dense_mode)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                       "image %u asks for dense mode %s, image 0 for %s: one pass has one mode", i,
                       umgclip_dense_mode_name (request->dense_mode),
                       umgclip_dense_mode_name (requests[0].dense_mode));
          return FALSE;
        }
      if (request->n_boxes > 0 && (request->boxes == NULL || request->regions == NULL))
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                       "%u boxes requested without box or region arrays", request->n_boxes);
          return FALSE;
        }
      if (request->n_boxes > 65536)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                       "%u boxes for one image are too many (at most 65536)", request->n_boxes);
          return FALSE;
        }
      spec->dense = spec->dense || request->dense != NULL || request->n_boxes > 0;
      most_boxes = MAX (most_boxes, request->n_boxes);
    }
  spec->dense_mode = spec->dense ? requests[0].dense_mode : 0;
  /* plan region slots in steps of 8 so a changing box count rarely needs a new plan */
  spec->box_capacity = (most_boxes + 7) / 8 * 8;
  return TRUE;
}

/* One pass of spec->batch images. inputs and device_inputs are the graph's frame or tensor
 * inputs (the boxes, when any, are added here); the backend writes straight into the callers'
 * arrays, scratch holding what they did not ask for. */
static gboolean
run_vision (UmgClipContext *ctx, const UmgVisionSpec *spec, GPtrArray *inputs,
            GArray *device_inputs, UmgClipImageRequest *requests, GError **error)
{
  const gint embed = ctx->model->embed_dim, patch = ctx->model->vision.patch_size;
  const gsize cells = (gsize) (spec->height / patch) * (spec->width / patch);
  const gint batch = spec->batch, capacity = spec->box_capacity;
  g_autoptr (GPtrArray) scratch = g_ptr_array_new_with_free_func (g_free);
  g_autofree gpointer *outputs = g_new0 (gpointer, 3 * (gsize) batch);
  g_autofree gfloat *boxes = NULL, *regions = NULL;
  PlanKey key;
  PlannedGraph *planned;
  gboolean ok;

  for (gint b = 0; b < batch; b++)
    {
      UmgClipImageRequest *request = &requests[b];
      if ((outputs[b] = request->embedding) == NULL)
        g_ptr_array_add (scratch, outputs[b] = g_new (gfloat, embed));
      if (spec->dense && (outputs[batch + b] = request->dense) == NULL)
        g_ptr_array_add (scratch, outputs[batch + b] = g_new (gfloat, cells * embed));
    }
  if (capacity > 0)
    {
      boxes = g_new0 (gfloat, 4 * (gsize) batch * capacity);
      regions = g_new (gfloat, (gsize) batch * capacity * embed);
      for (gint b = 0; b < batch; b++)
        {
          umg_vision_boxes_to_cells (ctx->model, requests[b].boxes, requests[b].n_boxes,
                                     boxes + 4 * (gsize) b * capacity);
          outputs[2 * batch + b] = regions + (gsize) b * capacity * embed;
        }
      g_ptr_array_add (inputs, boxes);
      if (device_inputs != NULL)
        g_array_set_size (device_inputs, inputs->len);
    }

  memset (&key, 0, sizeof key);
  key.kind = GRAPH_VISION;
  key.vision = *spec;
  g_mutex_lock (&ctx->lock);
  planned = planned_graph (ctx, &key, build_vision_graph, error);
  ok = planned != NULL
       && run_planned (ctx, planned, (const void *const *) inputs->pdata,
                       device_inputs != NULL ? (const UmgDeviceInput *) device_inputs->data : NULL,
                       (void *const *) outputs, error);
  g_mutex_unlock (&ctx->lock);
  if (!ok)
    return FALSE;
  for (gint b = 0; b < batch && capacity > 0; b++)
    memcpy (requests[b].regions, regions + (gsize) b * capacity * embed,
            (gsize) requests[b].n_boxes * embed * sizeof (gfloat));
  return TRUE;
}

gboolean
umgclip_encode_image (UmgClipContext *ctx, const gfloat *pixels, gint width, gint height,
                      UmgClipImageRequest *request, GError **error)
{
  g_autoptr (GPtrArray) inputs = g_ptr_array_new ();
  UmgVisionSpec spec;

  memset (&spec, 0, sizeof spec);
  spec.width = width;
  spec.height = height;
  spec.batch = 1;
  spec.frame_format = -1;
  if (!check_requests (ctx, request, 1, &spec, error))
    return FALSE;
  g_ptr_array_add (inputs, (gpointer) pixels);
  request->host_copies = 0;
  return run_vision (ctx, &spec, inputs, NULL, request, error);
}

static gboolean
same_layout (const UmgClipFrame *a, const UmgClipFrame *b)
{
  return a->format == b->format && a->width == b->width && a->height == b->height
         && memcmp (a->strides, b->strides, sizeof a->strides) == 0 && a->kr == b->kr
         && a->kb == b->kb && a->full_range == b->full_range
         && (a->device != NULL) == (b->device != NULL);
}

/* Frames of one layout, each checked; on the device, each on this context's device. */
static gboolean
check_frames (UmgClipContext *ctx, const UmgClipFrame *frames, guint n_frames, GError **error)
{
  UmgVkContext *vk = umg_backend_vulkan_get_context (ctx->backend);

  for (guint f = 0; f < n_frames; f++)
    {
      if (!same_layout (&frames[f], &frames[0]))
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                       "frame %u differs from frame 0 in format, size, strides, colour or "
                       "memory: one pass reads frames of one layout",
                       f);
          return FALSE;
        }
      if (frames[f].device == NULL)
        {
          if (!umg_frame_check (&frames[f], error))
            return FALSE;
        }
      else if (vk == NULL || !umg_device_frame_matches (frames[f].device, vk, &frames[f]))
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                       "frame %u lies in Vulkan memory %s", f,
                       vk == NULL ? "but the context runs on the CPU"
                                  : "of another device, or with another layout");
          return FALSE;
        }
    }
  return TRUE;
}

gboolean
umgclip_encode_frames (UmgClipContext *ctx, const UmgClipFrame *frames, guint n_frames,
                       const UmgClipCrop *crops, guint n_images, gint width, gint height,
                       UmgClipImageRequest *requests, GError **error)
{
  const UmgClipFrame *layout = &frames[0];
  gsize bytes[3];
  guint n_planes;

  if (n_images == 0)
    return TRUE;
  if (n_frames != 1 && n_frames != n_images)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "%u frames for %u images: give one frame, or one per image", n_frames, n_images);
      return FALSE;
    }
  if (!check_frames (ctx, frames, n_frames, error))
    return FALSE;
  n_planes = umg_frame_plane_bytes (layout->format, layout->width, layout->height, layout->strides,
                                    bytes);
  if ((gsize) bytes[0] + bytes[1] + bytes[2] > G_MAXINT32)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "frame of %" G_GSIZE_FORMAT " bytes is too large",
                   (gsize) bytes[0] + bytes[1] + bytes[2]);
      return FALSE;
    }

  for (guint first = 0; first < n_images; first += UMGCLIP_MAX_BATCH)
    {
      const guint batch = MIN (UMGCLIP_MAX_BATCH, n_images - first);
      const guint pass_frames = n_frames == 1 ? 1 : batch;
      UmgClipImageRequest *pass_requests = requests + first;
      g_autoptr (GPtrArray) inputs = g_ptr_array_new ();
      g_autoptr (GArray) device_inputs = NULL;
      g_autofree gint32 *rects = g_new (gint32, 4 * (gsize) batch);
      UmgVisionSpec spec;

      memset (&spec, 0, sizeof spec);
      spec.width = width;
      spec.height = height;
      spec.batch = batch;
      spec.frame_format = layout->format;
      spec.n_frames = pass_frames;
      spec.frame_width = layout->width;
      spec.frame_height = layout->height;
      memcpy (spec.frame_strides, layout->strides, sizeof spec.frame_strides);
      spec.frame_kr = layout->kr;
      spec.frame_kb = layout->kb;
      spec.frame_full_range = layout->full_range != FALSE;
      if (!check_requests (ctx, pass_requests, batch, &spec, error))
        return FALSE;

      if (layout->device != NULL)
        device_inputs = g_array_sized_new (FALSE, TRUE, sizeof (UmgDeviceInput), 16);
      for (guint f = 0; f < pass_frames; f++)
        {
          const UmgClipFrame *frame = &frames[n_frames == 1 ? 0 : first + f];
          for (guint i = 0; i < n_planes; i++)
            {
              g_ptr_array_add (inputs, (gpointer) frame->planes[i]);
              if (device_inputs != NULL)
                {
                  UmgDeviceInput input;
                  umg_device_frame_plane (frame->device, i, &input);
                  g_array_append_val (device_inputs, input);
                }
            }
        }
      for (guint b = 0; b < batch; b++)
        {
          UmgClipCrop rect;
          umg_crop_clamp (crops != NULL ? &crops[first + b] : NULL, layout->width, layout->height,
                          &rect);
          rects[4 * b] = rect.x;
          rects[4 * b + 1] = rect.y;
          rects[4 * b + 2] = rect.width;
          rects[4 * b + 3] = rect.height;
          /* a frame in host memory is copied once per pass to a backend that cannot read it in
           * place: counted on the first image of the pass that reads it */
          pass_requests[b].host_copies = layout->device == NULL
                                                 && ctx->backend->copies_direct_inputs
                                                 && (n_frames != 1 || b == 0)
                                             ? 1
                                             : 0;
        }
      g_ptr_array_add (inputs, rects);
      if (device_inputs != NULL)
        g_array_set_size (device_inputs, inputs->len);
      if (!run_vision (ctx, &spec, inputs, device_inputs, pass_requests, error))
        return FALSE;
    }
  return TRUE;
}

gboolean
umgclip_encode_frame (UmgClipContext *ctx, const UmgClipFrame *frame, gint width, gint height,
                      UmgClipImageRequest *request, GError **error)
{
  return umgclip_encode_frames (ctx, frame, 1, NULL, 1, width, height, request, error);
}

/* ---- zero-shot scoring ---- */

void
umgclip_l2_normalize (gfloat *v, gsize n)
{
  gdouble sum = 0;
  for (gsize i = 0; i < n; i++)
    sum += (gdouble) v[i] * v[i];
  sum = MAX (sqrt (sum), 1e-12);
  for (gsize i = 0; i < n; i++)
    v[i] /= sum;
}

gboolean
umgclip_encode_labels (UmgClipContext *ctx, const gchar *const *labels, guint n_labels,
                       const gchar *const *templates, guint n_templates, gfloat *out,
                       GError **error)
{
  const gint embed = ctx->model->embed_dim;
  const gchar *const plain[] = { "{}" };
  guint n_texts;
  g_autoptr (GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  g_autofree gfloat *encoded = NULL;

  if (templates == NULL || n_templates == 0)
    {
      templates = plain;
      n_templates = 1;
    }
  for (guint l = 0; l < n_labels; l++)
    for (guint t = 0; t < n_templates; t++)
      {
        g_auto (GStrv) parts = g_strsplit (templates[t], "{}", 2);
        g_ptr_array_add (texts, parts[1] != NULL
                                    ? g_strconcat (parts[0], labels[l], parts[1], NULL)
                                    : g_strdup_printf ("%s %s", templates[t], labels[l]));
      }
  n_texts = texts->len;
  encoded = g_new (gfloat, (gsize) n_texts * embed);
  if (!umgclip_encode_text (ctx, (const gchar *const *) texts->pdata, n_texts, encoded, error))
    return FALSE;
  for (guint l = 0; l < n_labels; l++)
    {
      gfloat *mean = out + (gsize) l * embed;
      memset (mean, 0, embed * sizeof (gfloat));
      for (guint t = 0; t < n_templates; t++)
        {
          gfloat *one = encoded + ((gsize) l * n_templates + t) * embed;
          umgclip_l2_normalize (one, embed);
          for (gint i = 0; i < embed; i++)
            mean[i] += one[i] / n_templates;
        }
      umgclip_l2_normalize (mean, embed);
    }
  return TRUE;
}

void
umgclip_score (UmgClipContext *ctx, const gfloat *image_embedding, const gfloat *label_embeddings,
               guint n_labels, gfloat *scores)
{
  umg_label_logits (image_embedding, ctx->model->embed_dim, label_embeddings, n_labels,
                    ctx->model->logit_scale, scores);
  umg_softmax (scores, n_labels);
}
