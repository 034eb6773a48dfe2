/* Model loading: read the configuration of a HuggingFace or OpenCLIP model directory (missing
 * keys take HuggingFace's defaults), map its safetensors file, check every tensor's shape
 * against the configuration and bring the weights into the canonical form of model.h. */
#include "model.h"

#include "safetensors.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

/* CLIP's pixel statistics, used when the directory does not say otherwise. */
static const gfloat clip_mean[3] = { 0.48145466f, 0.4578275f, 0.40821073f };
static const gfloat clip_std[3] = { 0.26862954f, 0.26130258f, 0.27577711f };

/* Sizes and counts in a configuration stay below this, so that products of two fit in 64 bits. */
#define UMG_CONFIG_INT_LIMIT (1 << 24)

typedef struct
{
  UmgModel *model;
  UmgSafetensors *file;
  const gchar *config_name; /* for messages: "config.json" or "open_clip_config.json" */
} Loader;

static guint
add_weight (UmgModel *model, const gchar *name, UmgDtype dtype, guint n_dims, const gsize *shape,
            const void *data, gpointer owned)
{
  UmgTensor tensor = { 0 };
  tensor.name = g_strdup (name);
  tensor.dtype = dtype;
  tensor.n_dims = n_dims;
  tensor.n_elements = 1;
  for (guint i = 0; i < n_dims; i++)
    {
      tensor.shape[i] = shape[i];
      tensor.n_elements *= shape[i];
    }
  tensor.data = data;
  tensor.owned = owned;
  g_array_append_val (model->weights, tensor);
  return model->weights->len - 1;
}

static gfloat
bf16_to_float (guint16 value)
{
  union
  {
    guint32 u;
    gfloat f;
  } out = { (guint32) value << 16 };
  return out.f;
}

/* The tensor's values as F32 or F16 without copying when the mapping allows it. */
static void
tensor_data (const UmgStTensor *st, UmgDtype *dtype, const void **data, gpointer *owned)
{
  gsize alignment = st->dtype == UMG_ST_F32 ? 4 : 2;
  *owned = NULL;
  if (st->dtype == UMG_ST_BF16)
    {
      const guint16 *in = (const guint16 *) st->data;
      gfloat *out = g_new (gfloat, st->n_elements);
      guint16 value;
      for (gsize i = 0; i < st->n_elements; i++)
        {
          memcpy (&value, in + i, 2);
          out[i] = bf16_to_float (value);
        }
      *dtype = UMG_DTYPE_F32;
      *data = *owned = out;
      return;
    }
  *dtype = st->dtype == UMG_ST_F32 ? UMG_DTYPE_F32 : UMG_DTYPE_F16;
  if (((guintptr) st->data) % alignment == 0)
    *data = st->data;
  else
    *data = *owned = g_memdup2 (st->data, st->n_bytes);
}

static gchar *
shape_string (guint n_dims, const gsize *shape)
{
  GString *text = g_string_new ("[");
  for (guint i = 0; i < n_dims; i++)
    g_string_append_printf (text, "%s%" G_GSIZE_FORMAT, i ? ", " : "", shape[i]);
  g_string_append_c (text, ']');
  return g_string_free (text, FALSE);
}

/* Find a tensor and check its shape against what the configuration implies. */
static const UmgStTensor *
lookup (Loader *loader, const gchar *name, guint n_dims, const gsize *shape, GError **error)
{
  const UmgStTensor *st = umg_safetensors_get (loader->file, name);
  gboolean same;

  if (st == NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_MODEL,
                   "%s: tensor '%s' is missing (the %s layout needs it for the configuration "
                   "in %s)",
                   umg_safetensors_path (loader->file), name, loader->model->layout,
                   loader->config_name);
      return NULL;
    }
  same = st->n_dims == n_dims;
  for (guint i = 0; same && i < n_dims; i++)
    same = st->shape[i] == shape[i];
  /* a scalar may be stored as shape [] or [1] */
  if (!same && n_dims == 0 && st->n_elements == 1)
    same = TRUE;
  if (!same)
    {
      g_autofree gchar *have = shape_string (st->n_dims, st->shape);
      g_autofree gchar *want = shape_string (n_dims, shape);
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_MODEL,
                   "%s: tensor '%s' has shape %s but %s implies %s",
                   umg_safetensors_path (loader->file), name, have, loader->config_name, want);
      return NULL;
    }
  return st;
}

/* Import a tensor as it is stored, reshaped to the given (same-sized) shape. */
static gboolean
import (Loader *loader, const gchar *name, guint n_dims, const gsize *file_shape, guint out_dims,
        const gsize *out_shape, guint *index, GError **error)
{
  const UmgStTensor *st = lookup (loader, name, n_dims, file_shape, error);
  UmgDtype dtype;
  const void *data;
  gpointer owned;

  if (st == NULL)
    return FALSE;
  tensor_data (st, &dtype, &data, &owned);
  *index = add_weight (loader->model, name, dtype, out_dims, out_shape, data, owned);
  return TRUE;
}

#define SHAPE(...) ((const gsize[]){ __VA_ARGS__ })
#define IMPORT(loader, name, index, error, ...)                                                    \
  import (loader, name, G_N_ELEMENTS (SHAPE (__VA_ARGS__)), SHAPE (__VA_ARGS__),                   \
          G_N_ELEMENTS (SHAPE (__VA_ARGS__)), SHAPE (__VA_ARGS__), index, error)

/* Import a [rows, cols] matrix stored as [cols, rows] (OpenCLIP's projections), transposed. */
static gboolean
import_transposed (Loader *loader, const gchar *name, gsize rows, gsize cols, guint *index,
                   GError **error)
{
  const UmgStTensor *st = lookup (loader, name, 2, SHAPE (cols, rows), error);
  UmgDtype dtype;
  const void *data;
  g_autofree gpointer owned = NULL;
  gsize element = 0;
  guint8 *out;

  if (st == NULL)
    return FALSE;
  tensor_data (st, &dtype, &data, &owned);
  element = umg_dtype_size (dtype);
  out = g_malloc (rows * cols * element);
  for (gsize r = 0; r < rows; r++)
    for (gsize c = 0; c < cols; c++)
      memcpy (out + (r * cols + c) * element, (const guint8 *) data + (c * rows + r) * element,
              element);
  *index = add_weight (loader->model, name, dtype, 2, SHAPE (rows, cols), out, out);
  return TRUE;
}

/* HuggingFace keeps q, k and v apart: stack them into one [3 rows, ...] tensor. */
static gboolean
import_stacked (Loader *loader, const gchar *const names[3], guint n_dims, const gsize *shape,
                guint *index, GError **error)
{
  const UmgStTensor *parts[3];
  gboolean same_dtype = TRUE;
  gsize part_elements = 1, out_shape[2];
  guint8 *out;

  for (guint i = 0; i < 3; i++)
    {
      parts[i] = lookup (loader, names[i], n_dims, shape, error);
      if (parts[i] == NULL)
        return FALSE;
      same_dtype = same_dtype && parts[i]->dtype == parts[0]->dtype;
    }
  for (guint i = 0; i < n_dims; i++)
    part_elements *= shape[i];
  out_shape[0] = 3 * shape[0];
  out_shape[1] = n_dims > 1 ? shape[1] : 1;

  if (same_dtype && parts[0]->dtype == UMG_ST_F16)
    {
      out = g_malloc (3 * part_elements * 2);
      for (guint i = 0; i < 3; i++)
        memcpy (out + i * part_elements * 2, parts[i]->data, part_elements * 2);
      *index = add_weight (loader->model, names[0], UMG_DTYPE_F16, n_dims, out_shape, out, out);
      return TRUE;
    }
  out = g_malloc (3 * part_elements * 4);
  for (guint i = 0; i < 3; i++)
    {
      UmgDtype dtype;
      const void *data;
      g_autofree gpointer owned = NULL;
      gfloat *dst = (gfloat *) out + i * part_elements;
      tensor_data (parts[i], &dtype, &data, &owned);
      for (gsize e = 0; e < part_elements; e++)
        dst[e] = dtype == UMG_DTYPE_F32 ? ((const gfloat *) data)[e]
                                        : umg_half_to_float (((const guint16 *) data)[e]);
    }
  *index = add_weight (loader->model, names[0], UMG_DTYPE_F32, n_dims, out_shape, out, out);
  return TRUE;
}

gfloat *
umg_model_weight_f32 (const UmgModel *model, guint index)
{
  const UmgTensor *tensor = umg_model_weight (model, index);
  gfloat *out = g_new (gfloat, tensor->n_elements);
  for (gsize i = 0; i < tensor->n_elements; i++)
    out[i] = tensor->dtype == UMG_DTYPE_F32
                 ? ((const gfloat *) tensor->data)[i]
                 : umg_half_to_float (((const guint16 *) tensor->data)[i]);
  return out;
}

/* ---- configuration ---- */

static gboolean
config_int (JsonObject *object, const gchar *key, gint fallback, gint *out, const gchar *where,
            GError **error)
{
  JsonNode *node;
  gint64 value;
  if (object == NULL || !json_object_has_member (object, key))
    {
      *out = fallback;
      return TRUE;
    }
  node = json_object_get_member (object, key);
  if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_INT64)
    {
      value = json_node_get_int (node);
      if (value > 0 && value < UMG_CONFIG_INT_LIMIT)
        {
          *out = value;
          return TRUE;
        }
    }
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_MODEL,
               "%s: '%s' must be a positive integer below %d", where, key, UMG_CONFIG_INT_LIMIT);
  return FALSE;
}

static gboolean
config_double (JsonObject *object, const gchar *key, gdouble fallback, gdouble *out,
               const gchar *where, GError **error)
{
  JsonNode *node;
  if (object == NULL || !json_object_has_member (object, key))
    {
      *out = fallback;
      return TRUE;
    }
  node = json_object_get_member (object, key);
  if (JSON_NODE_HOLDS_VALUE (node)
      && (json_node_get_value_type (node) == G_TYPE_INT64
          || json_node_get_value_type (node) == G_TYPE_DOUBLE))
    {
      *out = json_node_get_double (node);
      if (*out > 0 && isfinite (*out))
        return TRUE;
    }
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_MODEL, "%s: '%s' must be a positive number",
               where, key);
  return FALSE;
}

/* The member if it holds the given node type, else NULL: json-glib warns with a critical when a
 * getter meets another type. */
static JsonNode *
typed_member (JsonObject *object, const gchar *key, JsonNodeType type)
{
  JsonNode *node;
  if (object == NULL || !json_object_has_member (object, key))
    return NULL;
  node = json_object_get_member (object, key);
  return JSON_NODE_TYPE (node) == type ? node : NULL;
}

#define value_member(object, key) typed_member (object, key, JSON_NODE_VALUE)

static JsonArray *
array_member (JsonObject *object, const gchar *key)
{
  JsonNode *node = typed_member (object, key, JSON_NODE_ARRAY);
  return node ? json_node_get_array (node) : NULL;
}

static gboolean
parse_activation (const gchar *name, UmgActivation *act, const gchar *where, GError **error)
{
  if (g_strcmp0 (name, "quick_gelu") == 0)
    *act = UMG_ACT_QUICK_GELU;
  else if (g_strcmp0 (name, "gelu") == 0)
    *act = UMG_ACT_GELU;
  else
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_MODEL,
                   "%s: hidden_act '%s' is not supported (quick_gelu or gelu)", where,
                   name ? name : "(not a string)");
      return FALSE;
    }
  return TRUE;
}

static JsonObject *
child_object (JsonObject *parent, const gchar *key)
{
  JsonNode *node;
  if (parent == NULL || !json_object_has_member (parent, key))
    return NULL;
  node = json_object_get_member (parent, key);
  return JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
}

static gboolean
read_pixel_stats (JsonObject *object, const gchar *mean_key, const gchar *std_key,
                  UmgVision *vision)
{
  JsonArray *mean = array_member (object, mean_key), *std = array_member (object, std_key);
  gdouble values[6];
  if (mean == NULL || std == NULL || json_array_get_length (mean) != 3
      || json_array_get_length (std) != 3)
    return FALSE;
  /* statistics that are not finite numbers, or a spread that is not positive, are ignored */
  for (guint i = 0; i < 6; i++)
    {
      JsonNode *node = json_array_get_element (i < 3 ? mean : std, i % 3);
      GType type = JSON_NODE_HOLDS_VALUE (node) ? json_node_get_value_type (node) : G_TYPE_INVALID;
      if (type != G_TYPE_INT64 && type != G_TYPE_DOUBLE)
        return FALSE;
      values[i] = json_node_get_double (node);
      if (!isfinite (values[i]) || (i >= 3 && values[i] <= 0))
        return FALSE;
    }
  for (guint i = 0; i < 3; i++)
    {
      vision->mean[i] = values[i];
      vision->std[i] = values[3 + i];
    }
  return TRUE;
}

static JsonParser *
load_json (const gchar *path, JsonObject **root, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) local_error = NULL;
  JsonNode *node;

  if (!json_parser_load_from_file (parser, path, &local_error))
    {
      gboolean missing = g_error_matches (local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
      g_set_error (error, UMGCLIP_ERROR, missing ? UMGCLIP_ERROR_FILE : UMGCLIP_ERROR_FORMAT,
                   "%s: %s", path, local_error->message);
      return NULL;
    }
  node = json_parser_get_root (parser);
  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT, "%s: not a JSON object", path);
      return NULL;
    }
  *root = json_node_get_object (node);
  return g_steal_pointer (&parser);
}

static gboolean
hf_tower_config (JsonObject *config, const gchar *where, gint width, gint mlp, gint layers,
                 gint heads, UmgTower *tower, GError **error)
{
  gdouble eps;
  if (!config_int (config, "hidden_size", width, &tower->width, where, error)
      || !config_int (config, "intermediate_size", mlp, &tower->mlp_width, where, error)
      || !config_int (config, "num_hidden_layers", layers, &tower->layers, where, error)
      || !config_int (config, "num_attention_heads", heads, &tower->heads, where, error)
      || !config_double (config, "layer_norm_eps", 1e-5, &eps, where, error))
    return FALSE;
  tower->eps = eps;
  if (!parse_activation (config && json_object_has_member (config, "hidden_act")
                             ? (value_member (config, "hidden_act")
                                    ? json_node_get_string (value_member (config, "hidden_act"))
                                    : NULL)
                             : "quick_gelu",
                         &tower->act, where, error))
    return FALSE;
  return TRUE;
}

static gboolean
parse_hf_config (UmgModel *model, const gchar *path, GError **error)
{
  JsonObject *root, *text_config, *vision_config;
  g_autoptr (JsonParser) parser = load_json (path, &root, error);
  g_autofree gchar *text_where = NULL, *vision_where = NULL;
  g_autofree gchar *preprocessor = NULL;

  if (parser == NULL)
    return FALSE;
  text_config = child_object (root, "text_config");
  vision_config = child_object (root, "vision_config");
  text_where = g_strdup_printf ("%s: text_config", path);
  vision_where = g_strdup_printf ("%s: vision_config", path);
  if (!config_int (root, "projection_dim", 512, &model->embed_dim, path, error)
      || !hf_tower_config (text_config, text_where, 512, 2048, 12, 8, &model->text.tower, error)
      || !config_int (text_config, "max_position_embeddings", 77, &model->text.context_length,
                      text_where, error)
      || !config_int (text_config, "vocab_size", 49408, &model->text.vocab_size, text_where, error)
      || !hf_tower_config (vision_config, vision_where, 768, 3072, 12, 12, &model->vision.tower,
                           error)
      || !config_int (vision_config, "image_size", 224, &model->vision.image_size, vision_where,
                      error)
      || !config_int (vision_config, "patch_size", 32, &model->vision.patch_size, vision_where,
                      error))
    return FALSE;

  preprocessor = g_build_filename (model->dir, "preprocessor_config.json", NULL);
  if (g_file_test (preprocessor, G_FILE_TEST_EXISTS))
    {
      JsonObject *pre_root;
      g_autoptr (JsonParser) pre_parser = load_json (preprocessor, &pre_root, error);
      if (pre_parser == NULL)
        return FALSE;
      read_pixel_stats (pre_root, "image_mean", "image_std", &model->vision);
    }
  return TRUE;
}

/* OpenCLIP gives the MLP width as a ratio of the tower width; the product is bounded as a double
 * before it becomes an integer (a cast of 1e300 is undefined). */
static gboolean
mlp_width (gint width, gdouble ratio, const gchar *where, gint *out, GError **error)
{
  gdouble product = width * ratio;
  if (!(product >= 1.0 && product < UMG_CONFIG_INT_LIMIT))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_MODEL,
                   "%s: mlp_ratio %g gives an MLP width of %g for width %d; it must be in [1, %d)",
                   where, ratio, product, width, UMG_CONFIG_INT_LIMIT);
      return FALSE;
    }
  *out = (gint) product;
  return TRUE;
}

static gboolean
parse_openclip_config (UmgModel *model, const gchar *path, GError **error)
{
  JsonObject *root, *model_cfg, *vision_cfg, *text_cfg;
  g_autoptr (JsonParser) parser = load_json (path, &root, error);
  g_autofree gchar *vision_where = NULL, *text_where = NULL;
  gint head_width;
  gdouble mlp_ratio, text_mlp_ratio;
  UmgActivation act;

  if (parser == NULL)
    return FALSE;
  model_cfg = child_object (root, "model_cfg");
  if (model_cfg == NULL)
    model_cfg = root; /* a bare model config, as open_clip's model_configs/ */
  vision_cfg = child_object (model_cfg, "vision_cfg");
  text_cfg = child_object (model_cfg, "text_cfg");
  vision_where = g_strdup_printf ("%s: vision_cfg", path);
  text_where = g_strdup_printf ("%s: text_cfg", path);
  act = value_member (model_cfg, "quick_gelu")
                && json_node_get_boolean (value_member (model_cfg, "quick_gelu"))
            ? UMG_ACT_QUICK_GELU
            : UMG_ACT_GELU;

  if (!config_int (model_cfg, "embed_dim", 512, &model->embed_dim, path, error)
      || !config_int (vision_cfg, "width", 768, &model->vision.tower.width, vision_where, error)
      || !config_int (vision_cfg, "layers", 12, &model->vision.tower.layers, vision_where, error)
      || !config_int (vision_cfg, "head_width", 64, &head_width, vision_where, error)
      || !config_double (vision_cfg, "mlp_ratio", 4.0, &mlp_ratio, vision_where, error)
      || !config_int (vision_cfg, "patch_size", 16, &model->vision.patch_size, vision_where, error)
      || !config_int (text_cfg, "width", 512, &model->text.tower.width, text_where, error)
      || !config_int (text_cfg, "layers", 12, &model->text.tower.layers, text_where, error)
      || !config_int (text_cfg, "heads", 8, &model->text.tower.heads, text_where, error)
      || !config_double (text_cfg, "mlp_ratio", 4.0, &text_mlp_ratio, text_where, error)
      || !config_int (text_cfg, "context_length", 77, &model->text.context_length, text_where,
                      error)
      || !config_int (text_cfg, "vocab_size", 49408, &model->text.vocab_size, text_where, error))
    return FALSE;

  /* image_size is an integer or [height, width]; only square checkpoints are supported */
  if (vision_cfg != NULL && json_object_has_member (vision_cfg, "image_size")
      && JSON_NODE_HOLDS_ARRAY (json_object_get_member (vision_cfg, "image_size")))
    {
      JsonArray *size = json_object_get_array_member (vision_cfg, "image_size");
      gint64 side[2] = { 0, 0 };
      /* range-checked as gint64 before narrowing: [2^32 - 4, 2^32 - 4] must not become -4 */
      for (guint i = 0; i < 2 && json_array_get_length (size) == 2; i++)
        {
          JsonNode *node = json_array_get_element (size, i);
          if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_INT64)
            side[i] = json_node_get_int (node);
        }
      if (json_array_get_length (size) != 2 || side[0] != side[1] || side[0] <= 0
          || side[0] >= UMG_CONFIG_INT_LIMIT)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_MODEL,
                       "%s: image_size must be a positive integer below %d or a square [size, "
                       "size] (got [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "])",
                       vision_where, UMG_CONFIG_INT_LIMIT, side[0], side[1]);
          return FALSE;
        }
      model->vision.image_size = (gint) side[0];
    }
  else if (!config_int (vision_cfg, "image_size", 224, &model->vision.image_size, vision_where,
                        error))
    return FALSE;

  if (model->vision.tower.width % head_width != 0)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_MODEL,
                   "%s: width %d is not a multiple of head_width %d", vision_where,
                   model->vision.tower.width, head_width);
      return FALSE;
    }
  model->vision.tower.heads = model->vision.tower.width / head_width;
  if (!mlp_width (model->vision.tower.width, mlp_ratio, vision_where,
                  &model->vision.tower.mlp_width, error)
      || !mlp_width (model->text.tower.width, text_mlp_ratio, text_where,
                     &model->text.tower.mlp_width, error))
    return FALSE;
  model->vision.tower.act = model->text.tower.act = act;
  model->vision.tower.eps = model->text.tower.eps = 1e-5f;
  read_pixel_stats (child_object (root, "preprocess_cfg"), "mean", "std", &model->vision);
  return TRUE;
}

static gboolean
check_tower (const UmgTower *tower, const gchar *which, const gchar *config, GError **error)
{
  if (tower->width % tower->heads != 0)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_MODEL,
                   "%s: %s width %d is not divisible by its %d heads", config, which, tower->width,
                   tower->heads);
      return FALSE;
    }
  return TRUE;
}

/* ---- weights ---- */

typedef struct
{
  const gchar *ln1, *ln2, *out, *fc1, *fc2; /* name stems, before ".weight" / ".bias" */
  gboolean packed_qkv;                      /* OpenCLIP's in_proj_weight */
} LayerNames;

static gboolean
import_layer (Loader *loader, const gchar *prefix, const LayerNames *names, const UmgTower *tower,
              UmgLayerWeights *layer, GError **error)
{
  const gsize width = tower->width, mlp = tower->mlp_width;
#define NAME(stem, suffix) g_strdup_printf ("%s.%s.%s", prefix, stem, suffix)
  g_autofree gchar *ln1_w = NAME (names->ln1, "weight"), *ln1_b = NAME (names->ln1, "bias");
  g_autofree gchar *ln2_w = NAME (names->ln2, "weight"), *ln2_b = NAME (names->ln2, "bias");
  g_autofree gchar *out_w = NAME (names->out, "weight"), *out_b = NAME (names->out, "bias");
  g_autofree gchar *fc1_w = NAME (names->fc1, "weight"), *fc1_b = NAME (names->fc1, "bias");
  g_autofree gchar *fc2_w = NAME (names->fc2, "weight"), *fc2_b = NAME (names->fc2, "bias");
#undef NAME

  if (!IMPORT (loader, ln1_w, &layer->ln1_weight, error, width)
      || !IMPORT (loader, ln1_b, &layer->ln1_bias, error, width)
      || !IMPORT (loader, ln2_w, &layer->ln2_weight, error, width)
      || !IMPORT (loader, ln2_b, &layer->ln2_bias, error, width)
      || !IMPORT (loader, out_w, &layer->out_weight, error, width, width)
      || !IMPORT (loader, out_b, &layer->out_bias, error, width)
      || !IMPORT (loader, fc1_w, &layer->fc1_weight, error, mlp, width)
      || !IMPORT (loader, fc1_b, &layer->fc1_bias, error, mlp)
      || !IMPORT (loader, fc2_w, &layer->fc2_weight, error, width, mlp)
      || !IMPORT (loader, fc2_b, &layer->fc2_bias, error, width))
    return FALSE;

  if (names->packed_qkv)
    {
      g_autofree gchar *w = g_strdup_printf ("%s.attn.in_proj_weight", prefix);
      g_autofree gchar *b = g_strdup_printf ("%s.attn.in_proj_bias", prefix);
      return IMPORT (loader, w, &layer->qkv_weight, error, 3 * width, width)
             && IMPORT (loader, b, &layer->qkv_bias, error, 3 * width);
    }
  else
    {
      g_autofree gchar *qw = g_strdup_printf ("%s.self_attn.q_proj.weight", prefix);
      g_autofree gchar *kw = g_strdup_printf ("%s.self_attn.k_proj.weight", prefix);
      g_autofree gchar *vw = g_strdup_printf ("%s.self_attn.v_proj.weight", prefix);
      g_autofree gchar *qb = g_strdup_printf ("%s.self_attn.q_proj.bias", prefix);
      g_autofree gchar *kb = g_strdup_printf ("%s.self_attn.k_proj.bias", prefix);
      g_autofree gchar *vb = g_strdup_printf ("%s.self_attn.v_proj.bias", prefix);
      const gchar *weights[3] = { qw, kw, vw }, *biases[3] = { qb, kb, vb };
      return import_stacked (loader, weights, 2, SHAPE (width, width), &layer->qkv_weight, error)
             && import_stacked (loader, biases, 1, SHAPE (width), &layer->qkv_bias, error);
    }
}

static gboolean
import_tower (Loader *loader, const gchar *layer_prefix, const LayerNames *names, UmgTower *tower,
              GError **error)
{
  tower->layer = g_new0 (UmgLayerWeights, tower->layers);
  for (gint i = 0; i < tower->layers; i++)
    {
      g_autofree gchar *prefix = g_strdup_printf ("%s.%d", layer_prefix, i);
      if (!import_layer (loader, prefix, names, tower, &tower->layer[i], error))
        return FALSE;
    }
  return TRUE;
}

/* Before the layer tables are allocated: a file with fewer tensors than the configuration's layers
 * need (10^6 layers) is rejected here, naming both files. Past this, every tensor's shape is
 * compared with the file's before anything of its size is allocated. */
static gboolean
check_file_holds_config (Loader *loader, GError **error)
{
  const UmgModel *model = loader->model;
  /* every layer has at least 12 tensors (OpenCLIP's packed q, k, v) */
  const guint64 min_tensors
      = 12 * ((guint64) model->vision.tower.layers + model->text.tower.layers);
  const guint n_tensors = umg_safetensors_n_tensors (loader->file);

  if (min_tensors > n_tensors)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_MODEL,
                   "%s: %d vision and %d text layers need at least %" G_GUINT64_FORMAT
                   " tensors, but %s holds %u",
                   loader->config_name, model->vision.tower.layers, model->text.tower.layers,
                   min_tensors, umg_safetensors_path (loader->file), n_tensors);
      return FALSE;
    }
  return TRUE;
}

static gboolean
import_weights (Loader *loader, gboolean openclip, GError **error)
{
  static const LayerNames hf_names
      = { "layer_norm1", "layer_norm2", "self_attn.out_proj", "mlp.fc1", "mlp.fc2", FALSE };
  static const LayerNames openclip_names
      = { "ln_1", "ln_2", "attn.out_proj", "mlp.c_fc", "mlp.c_proj", TRUE };
  UmgModel *model = loader->model;
  UmgVision *vision = &model->vision;
  UmgText *text = &model->text;
  const gsize vw = vision->tower.width, tw = text->tower.width, embed = model->embed_dim;
  const gsize p = vision->patch_size, positions = 1 + (gsize) vision->grid * vision->grid;
  const gsize vocab = text->vocab_size, context = text->context_length;
  guint logit_scale;

  if (!openclip)
    {
      if (!import (loader, "vision_model.embeddings.patch_embedding.weight", 4, SHAPE (vw, 3, p, p),
                   2, SHAPE (vw, 3 * p * p), &vision->patch_weight, error)
          || !IMPORT (loader, "vision_model.embeddings.class_embedding", &vision->class_embedding,
                      error, vw)
          || !IMPORT (loader, "vision_model.embeddings.position_embedding.weight",
                      &vision->position_embedding, error, positions, vw)
          || !IMPORT (loader, "vision_model.pre_layrnorm.weight", &vision->ln_pre_weight, error, vw)
          || !IMPORT (loader, "vision_model.pre_layrnorm.bias", &vision->ln_pre_bias, error, vw)
          || !import_tower (loader, "vision_model.encoder.layers", &hf_names, &vision->tower, error)
          || !IMPORT (loader, "vision_model.post_layernorm.weight", &vision->ln_post_weight, error,
                      vw)
          || !IMPORT (loader, "vision_model.post_layernorm.bias", &vision->ln_post_bias, error, vw)
          || !IMPORT (loader, "visual_projection.weight", &vision->projection, error, embed, vw)
          || !IMPORT (loader, "text_model.embeddings.token_embedding.weight",
                      &text->token_embedding, error, vocab, tw)
          || !IMPORT (loader, "text_model.embeddings.position_embedding.weight",
                      &text->position_embedding, error, context, tw)
          || !import_tower (loader, "text_model.encoder.layers", &hf_names, &text->tower, error)
          || !IMPORT (loader, "text_model.final_layer_norm.weight", &text->ln_final_weight, error,
                      tw)
          || !IMPORT (loader, "text_model.final_layer_norm.bias", &text->ln_final_bias, error, tw)
          || !IMPORT (loader, "text_projection.weight", &text->projection, error, embed, tw))
        return FALSE;
    }
  else
    {
      if (!import (loader, "visual.conv1.weight", 4, SHAPE (vw, 3, p, p), 2, SHAPE (vw, 3 * p * p),
                   &vision->patch_weight, error)
          || !IMPORT (loader, "visual.class_embedding", &vision->class_embedding, error, vw)
          || !IMPORT (loader, "visual.positional_embedding", &vision->position_embedding, error,
                      positions, vw)
          || !IMPORT (loader, "visual.ln_pre.weight", &vision->ln_pre_weight, error, vw)
          || !IMPORT (loader, "visual.ln_pre.bias", &vision->ln_pre_bias, error, vw)
          || !import_tower (loader, "visual.transformer.resblocks", &openclip_names, &vision->tower,
                            error)
          || !IMPORT (loader, "visual.ln_post.weight", &vision->ln_post_weight, error, vw)
          || !IMPORT (loader, "visual.ln_post.bias", &vision->ln_post_bias, error, vw)
          || !import_transposed (loader, "visual.proj", embed, vw, &vision->projection, error)
          || !IMPORT (loader, "token_embedding.weight", &text->token_embedding, error, vocab, tw)
          || !IMPORT (loader, "positional_embedding", &text->position_embedding, error, context, tw)
          || !import_tower (loader, "transformer.resblocks", &openclip_names, &text->tower, error)
          || !IMPORT (loader, "ln_final.weight", &text->ln_final_weight, error, tw)
          || !IMPORT (loader, "ln_final.bias", &text->ln_final_bias, error, tw)
          || !import_transposed (loader, "text_projection", embed, tw, &text->projection, error))
        return FALSE;
    }

  if (!import (loader, "logit_scale", 0, NULL, 0, NULL, &logit_scale, error))
    return FALSE;
  {
    g_autofree gfloat *value = umg_model_weight_f32 (model, logit_scale);
    model->logit_scale = expf (value[0]);
  }
  return TRUE;
}

UmgModel *
umg_model_load (const gchar *dir, GError **error)
{
  g_autoptr (UmgModel) model = g_new0 (UmgModel, 1);
  g_autofree gchar *hf_config = g_build_filename (dir, "config.json", NULL);
  g_autofree gchar *openclip_config = g_build_filename (dir, "open_clip_config.json", NULL);
  g_autofree gchar *weights_path = NULL;
  gboolean openclip;
  Loader loader = { model, NULL, NULL };

  model->dir = g_strdup (dir);
  model->weights = g_array_new (FALSE, TRUE, sizeof (UmgTensor));
  memcpy (model->vision.mean, clip_mean, sizeof clip_mean);
  memcpy (model->vision.std, clip_std, sizeof clip_std);

  if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FILE, "%s: model directory not found", dir);
      return NULL;
    }
  openclip = g_file_test (openclip_config, G_FILE_TEST_EXISTS);
  if (!openclip && !g_file_test (hf_config, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FILE,
                   "%s: no config.json (HuggingFace) or open_clip_config.json (OpenCLIP) in the "
                   "model directory",
                   dir);
      return NULL;
    }
  model->layout = g_strdup (openclip ? "openclip" : "huggingface");
  loader.config_name = openclip ? openclip_config : hf_config;
  if (openclip ? !parse_openclip_config (model, openclip_config, error)
               : !parse_hf_config (model, hf_config, error))
    return NULL;
  if (!check_tower (&model->vision.tower, "vision", loader.config_name, error)
      || !check_tower (&model->text.tower, "text", loader.config_name, error))
    return NULL;
  if (model->vision.image_size % model->vision.patch_size != 0)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_MODEL,
                   "%s: image size %d is not a multiple of patch size %d", loader.config_name,
                   model->vision.image_size, model->vision.patch_size);
      return NULL;
    }
  model->vision.grid = model->vision.image_size / model->vision.patch_size;

  weights_path = g_build_filename (
      dir, openclip ? "open_clip_model.safetensors" : "model.safetensors", NULL);
  loader.file = umg_safetensors_open (weights_path, error);
  if (loader.file == NULL)
    return NULL;
  model->file = loader.file;
  model->dtype = g_ascii_strdown (umg_st_dtype_name (umg_safetensors_main_dtype (loader.file)), -1);
  if (!check_file_holds_config (&loader, error) || !import_weights (&loader, openclip, error))
    return NULL;
  return g_steal_pointer (&model);
}

void
umg_model_free (UmgModel *model)
{
  if (model == NULL)
    return;
  if (model->weights != NULL)
    {
      for (guint i = 0; i < model->weights->len; i++)
        umg_tensor_clear (&g_array_index (model->weights, UmgTensor, i));
      g_array_unref (model->weights);
    }
  g_free (model->vision.tower.layer);
  g_free (model->text.tower.layer);
  umg_safetensors_free (model->file);
  g_free (model->dir);
  g_free (model->layout);
  g_free (model->dtype);
  g_free (model);
}
